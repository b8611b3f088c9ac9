//! `prov graph`: the rule -> role -> entitlement graph as Graphviz DOT or
//! Mermaid, for the whole policy or one identity (its reason chains).

use std::collections::BTreeMap;

/// How a node is drawn, by what it is.
fn shape(node: &str) -> (&'static str, &'static str) {
    if node.starts_with("rule ") {
        ("box", "[\"")
    } else if node.starts_with("role ") {
        ("ellipse", "([\"")
    } else if node.starts_with("lease ") || node.starts_with("assignment ") {
        ("hexagon", "{{\"")
    } else {
        ("note", "[/\"")
    }
}

/// The edges, without repeats, in first-seen order; the nodes numbered.
fn nodes(edges: &[(String, String)]) -> (Vec<&str>, Vec<(usize, usize)>) {
    fn id<'a>(index: &mut BTreeMap<&'a str, usize>, names: &mut Vec<&'a str>, n: &'a str) -> usize {
        *index.entry(n).or_insert_with(|| {
            names.push(n);
            names.len() - 1
        })
    }
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (a, b) in edges {
        let e = (id(&mut index, &mut names, a), id(&mut index, &mut names, b));
        if !out.contains(&e) {
            out.push(e);
        }
    }
    (names, out)
}

/// Graphviz DOT.
pub(crate) fn dot(edges: &[(String, String)]) -> String {
    let (names, edges) = nodes(edges);
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph prov {\n  rankdir=LR;\n");
    for (i, n) in names.iter().enumerate() {
        out.push_str(&format!(
            "  n{i} [label={}, shape={}];\n",
            quote(n),
            shape(n).0
        ));
    }
    for (a, b) in edges {
        out.push_str(&format!("  n{a} -> n{b};\n"));
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart.
pub(crate) fn mermaid(edges: &[(String, String)]) -> String {
    let (names, edges) = nodes(edges);
    let close = |open: &str| match open {
        "[\"" => "\"]",
        "([\"" => "\"])",
        "{{\"" => "\"}}",
        _ => "\"/]",
    };
    let mut out = String::from("flowchart LR\n");
    for (i, n) in names.iter().enumerate() {
        let open = shape(n).1;
        let label = n.replace('"', "#quot;");
        out.push_str(&format!("  n{i}{open}{label}{}\n", close(open)));
    }
    for (a, b) in edges {
        out.push_str(&format!("  n{a} --> n{b}\n"));
    }
    out
}

/// The edges of reason chains (`rule all -> role employee -> ldap:staff`).
pub(crate) fn chain_edges<'a>(chains: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in chains {
        let parts: Vec<&str> = c.split(" -> ").collect();
        for w in parts.windows(2) {
            if let [a, b] = w {
                out.push(((*a).to_owned(), (*b).to_owned()));
            }
        }
    }
    out
}
