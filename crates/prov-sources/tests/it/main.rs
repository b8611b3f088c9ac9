//! prov-sources tests: real files in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test reports failure by panicking

use std::path::PathBuf;

use prov_core::{LifecycleState, Value};
use prov_sources::{Column, ColumnType, CsvSource, JsonLinesSource, Mapping, Source};

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prov-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn mapping() -> Mapping {
    Mapping::new("employee_id")
        .state("status")
        .state_value("T", LifecycleState::Terminated)
        .dates("start", "end")
        .manager("manager")
        .attribute("given_name", Column::string("first").required())
        .attribute("level", Column::typed("grade", ColumnType::Int))
        .attribute("remote", Column::typed("remote", ColumnType::Bool))
        .attribute(
            "projects",
            Column::typed(
                "projects",
                ColumnType::List {
                    separator: ";".into(),
                },
            ),
        )
}

#[test]
fn a_good_csv_loads_with_types_states_dates_and_unmapped_columns() {
    let p = file(
        "good.csv",
        "employee_id,first,grade,remote,projects,status,start,end,manager,location\n\
         E1,Ada,4,yes,apollo; gemini,active,2020-01-06,,,Berlin\n\
         E2,Bob,,no,,T,2019-03-01,2026-11-20,E1,\"Paris, FR\"\n",
    );
    let people = CsvSource::new(&p, mapping()).load().unwrap();
    assert_eq!(people.len(), 2);
    let ada = &people[0];
    assert_eq!(ada.attr("level"), Some(&Value::Int(4)));
    assert_eq!(ada.attr("remote"), Some(&Value::Bool(true)));
    assert_eq!(
        ada.attr("projects"),
        Some(&Value::from(vec!["apollo", "gemini"]))
    );
    assert_eq!(
        ada.attr("location"),
        Some(&Value::from("Berlin")),
        "unmapped columns come along as strings"
    );
    let bob = &people[1];
    assert_eq!(bob.state, LifecycleState::Terminated);
    assert_eq!(bob.manager.as_ref().map(|m| m.as_str()), Some("E1"));
    assert_eq!(
        bob.end_date.map(|d| d.to_string()).as_deref(),
        Some("2026-11-20")
    );
    assert_eq!(
        bob.attr("level"),
        None,
        "an empty optional value is absent, not empty"
    );
    assert_eq!(bob.attr("location"), Some(&Value::from("Paris, FR")));
}

#[test]
fn every_bad_row_is_reported_with_line_and_field_and_nothing_loads() {
    let p = file(
        "bad.csv",
        "employee_id,first,grade,remote,projects,status,start,end,manager\n\
         E1,Ada,4,yes,,active,2020-01-06,,\n\
         E2,,x,maybe,,gone,2020-13-01,,\n\
         E1,Ann,1,no,,active,2020-01-06,2019-01-01,\n\
         ,Nobody,1,no,,active,,,\n",
    );
    let err = CsvSource::new(&p, mapping()).load().unwrap_err();
    let text = err.to_string();
    let f = p.display();
    for want in [
        format!("{f}:3: field `first`: required for attribute `given_name`, and empty"),
        format!("{f}:3: field `grade`: `x` is not a whole number"),
        format!("{f}:3: field `remote`: `maybe` is not true or false"),
        format!("{f}:3: field `status`: unknown state `gone`"),
        format!("{f}:3: field `start`: `2020-13-01` is not a date"),
        format!("{f}:4: field `end`: the end date 2019-01-01 is before the start date 2020-01-06"),
        format!("{f}:5: field `employee_id`: the identity id is empty"),
    ] {
        assert!(text.contains(&want), "missing `{want}` in:\n{text}");
    }
    assert_eq!(err.total, 7, "{text}");
    assert!(
        text.starts_with("the source has 7 problems; nothing was loaded"),
        "{text}"
    );
}

#[test]
fn duplicate_ids_name_both_lines_and_missing_columns_are_named() {
    let p = file("dup.csv", "employee_id,first\nE1,Ada\nE2,Bob\nE1,Ann\n");
    let m = Mapping::new("employee_id").attribute("given_name", Column::string("first"));
    let err = CsvSource::new(&p, m).load().unwrap_err().to_string();
    assert!(
        err.contains(":4: field `employee_id`: identity id `E1` is also on line 2"),
        "{err}"
    );

    let p = file("cols.csv", "id,name\n1,Ada\n");
    let err = CsvSource::new(&p, mapping())
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains(":1: field `employee_id`: the mapping names column `employee_id`, which the header lacks (it has: id, name)"), "{err}");

    let err = CsvSource::new(file("x", "").with_file_name("missing.csv"), mapping())
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.csv: cannot read"), "{err}");
}

#[test]
fn json_lines_load_with_the_same_mapping_and_report_lines() {
    let p = file(
        "hr.jsonl",
        "{\"employee_id\": \"E1\", \"first\": \"Ada\", \"grade\": 4, \"remote\": true, \"projects\": [\"apollo\", \"gemini\"], \"status\": \"active\"}\n\
         \n\
         {\"employee_id\": \"E2\", \"first\": \"Bob\", \"status\": \"T\", \"end\": \"2026-11-20\", \"team\": \"red\"}\n",
    );
    let people = JsonLinesSource::new(&p, mapping()).load().unwrap();
    assert_eq!(people.len(), 2);
    assert_eq!(people[0].attr("level"), Some(&Value::Int(4)));
    assert_eq!(
        people[0].attr("projects"),
        Some(&Value::from(vec!["apollo", "gemini"]))
    );
    assert_eq!(people[1].state, LifecycleState::Terminated);
    assert_eq!(people[1].attr("team"), Some(&Value::from("red")));

    let bad = file(
        "bad.jsonl",
        "{\"employee_id\": \"E1\", \"first\": \"Ada\"}\n[1,2]\n{not json\n{\"employee_id\": \"E3\", \"grade\": \"high\", \"first\": \"C\"}\n",
    );
    let err = JsonLinesSource::new(&bad, mapping())
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains(":2: not a JSON object"), "{err}");
    assert!(err.contains(":3: not valid JSON"), "{err}");
    assert!(
        err.contains(":4: field `grade`: `high` is not a whole number"),
        "{err}"
    );
}

#[test]
fn mappings_read_from_config_text() {
    let m: Mapping = toml::from_str(
        r#"
        id = "employee_id"
        state = "status"
        state_values = { T = "terminated", L = "suspended" }
        [attributes]
        given_name = "first"
        level = { column = "grade", type = "int", required = true }
        hired = { column = "hire", type = "date", format = "%d/%m/%Y" }
        "#,
    )
    .unwrap();
    assert_eq!(m.attributes["given_name"], Column::string("first"));
    assert_eq!(
        m.attributes["level"],
        Column::typed("grade", ColumnType::Int).required()
    );
    assert_eq!(m.state_values["L"], LifecycleState::Suspended);
    let bad: Result<Mapping, _> =
        toml::from_str("id = \"x\"\n[attributes]\na = { column = \"c\", type = \"float\" }\n");
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("unknown type `float`")
    );
}

/// A mapping for files with only a few columns.
fn small() -> Mapping {
    Mapping::new("employee_id")
        .state("status")
        .attribute("given_name", Column::string("first"))
}

#[test]
fn a_blank_state_is_an_error_unless_the_mapping_gives_a_default() {
    let text = "employee_id,first,status\nE1,Ada,active\nE2,Bob,\n";
    let p = file("blank-state.csv", text);
    let err = CsvSource::new(&p, small()).load().unwrap_err();
    let f = p.display().to_string();
    assert_eq!(err.errors.len(), 1, "{err}");
    assert!(
        err.errors[0]
            .to_string()
            .starts_with(&format!("{f}:3: field `status`: the state is blank")),
        "{err}"
    );
    let people = CsvSource::new(&p, small().state_default(LifecycleState::Suspended))
        .load()
        .unwrap();
    assert_eq!(people[1].state, LifecycleState::Suspended);
}

#[test]
fn an_attribute_the_policy_reads_that_no_column_gives_fails_the_load() {
    // The export renamed `email` to `mail`: every identity would lack it.
    let text = "employee_id,first,status,mail\nE1,Ada,active,ada@example.com\n";
    let p = file("renamed.csv", text);
    let expecting = || small().expect(["email", "given_name", "location"]);
    let err = CsvSource::new(&p, expecting()).load().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("field `email`: the policy reads attribute `email`, which no column gives")
            && text.contains("field `location`")
            && !text.contains("field `given_name`:"),
        "{text}"
    );
    // A mapped attribute or a column of the attribute's name is enough.
    let ok = small()
        .attribute("email", Column::string("mail"))
        .expect(["email", "given_name"]);
    assert_eq!(CsvSource::new(&p, ok).load().unwrap().len(), 1);
    // Without `other_columns`, a column of that name is not read.
    let only = small().only_mapped().expect(["mail"]);
    assert!(CsvSource::new(&p, only).load().is_err());
    // JSON Lines: a key no record has.
    let j = file(
        "renamed.jsonl",
        "{\"employee_id\": \"E1\", \"first\": \"Ada\", \"status\": \"active\", \"mail\": \"a@x\"}\n",
    );
    let err = JsonLinesSource::new(&j, expecting()).load().unwrap_err();
    assert!(
        err.to_string()
            .contains("field `email`: the policy reads attribute `email`, which no key gives"),
        "{err}"
    );
    // A mapped key no record has is absent, not an error, unless the
    // policy reads the attribute.
    let optional = small().attribute("title", Column::string("job"));
    assert!(JsonLinesSource::new(&j, optional.clone()).load().is_ok());
    let err = JsonLinesSource::new(&j, optional.expect(["title"]))
        .load()
        .unwrap_err();
    assert!(err.to_string().contains("field `title`"), "{err}");
}
