//! A plan as people read it: changes grouped per person, each group named
//! by its event (joiner, mover, leaver), attribute changes as `old -> new`,
//! the attributes of creates, when a deletion is due. Colours only on a
//! terminal, and never with `NO_COLOR` set.

use std::collections::{BTreeMap, BTreeSet};

use prov_core::Value;
use prov_engine::{OpKind, Plan, PlannedOp};
use prov_resolver::CompiledPolicy;

use crate::output::outln;

/// ANSI styles, or none.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    on: bool,
}

impl Style {
    /// Colours when standard output is a terminal and `NO_COLOR` is unset or empty.
    pub(crate) fn detect() -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            on: std::io::stdout().is_terminal() && !no_color,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A value as people read it: text quoted, the rest as written.
fn value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `+`, `-` or `~`, and the colour of an operation.
fn sign(kind: &OpKind) -> (&'static str, &'static str) {
    match kind {
        OpKind::Create { .. }
        | OpKind::Grant { .. }
        | OpKind::Link { .. }
        | OpKind::CreateEntitlement { .. } => ("+", "32"),
        OpKind::SetEnabled { enabled: true, .. } => ("+", "32"),
        OpKind::Update { .. } => ("~", "33"),
        _ => ("-", "31"),
    }
}

/// The role that gives an entitlement itself, from a reason chain
/// (`rule all -> role employee -> ldap:staff`: `employee`).
fn giving_role(reason: &str) -> Option<&str> {
    reason
        .split(" -> ")
        .filter_map(|part| part.strip_prefix("role "))
        .last()
}

/// What happens to one person: `joiner`, `leaver`, `mover: a -> b`, `update`.
fn event(policy: &CompiledPolicy, ops: &[&PlannedOp]) -> String {
    if ops.iter().any(|o| matches!(o.kind, OpKind::Create { .. })) {
        return "joiner".to_owned();
    }
    if ops
        .iter()
        .any(|o| o.reasons.iter().any(|r| r.starts_with("leaver:")))
    {
        return "leaver".to_owned();
    }
    let mut from: BTreeSet<&str> = BTreeSet::new();
    let mut to: BTreeSet<&str> = BTreeSet::new();
    for o in ops {
        match &o.kind {
            OpKind::Grant { .. } => to.extend(o.reasons.iter().filter_map(|r| giving_role(r))),
            OpKind::Revoke { entitlement, .. } => {
                from.extend(policy.roles_granting(&o.target, entitlement));
            }
            _ => {}
        }
    }
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    match (from.is_empty(), to.is_empty()) {
        (true, true) => "update".to_owned(),
        (false, true) => format!("mover: loses {}", list(&from)),
        (true, false) => format!("mover: gains {}", list(&to)),
        (false, false) => format!("mover: {} -> {}", list(&from), list(&to)),
    }
}

/// One operation: its line, then what it sets and why.
fn print_op(op: &PlannedOp, style: Style) {
    let (sign, colour) = sign(&op.kind);
    let line = op.to_string();
    // The engine's line without its id and identity: `create  ldap: ada`.
    let body = line.split_once(' ').map_or(line.as_str(), |(_, rest)| rest);
    let body = match &op.identity {
        Some(who) => body
            .strip_suffix(&format!(" [{who}]"))
            .unwrap_or(body)
            .to_owned(),
        None => body.to_owned(),
    };
    outln!("  {}", style.paint(colour, &format!("{sign} {body}")));
    match &op.kind {
        OpKind::Create {
            attributes, secret, ..
        } => {
            for (k, v) in attributes {
                outln!("        {k} = {}", value(v));
            }
            for k in secret {
                outln!("        {k} = (secret)");
            }
        }
        OpKind::Update { delta, secret, .. } => {
            let was = |k: &str| op.before.get(k).map_or("(none)".to_owned(), value);
            for (k, v) in &delta.set {
                outln!("        {k}: {} -> {}", was(k), value(v));
            }
            for k in &delta.remove {
                outln!("        {k}: {} -> (removed)", was(k));
            }
            for k in secret {
                outln!("        {k}: reset (secret)");
            }
            if let (Some(new), Some(old)) = (&delta.login, &op.account_login) {
                outln!("        login: {old} -> {new}");
            }
        }
        _ => {}
    }
    for r in &op.reasons {
        outln!("        because {r}");
    }
}

/// The operations, grouped per person in the plan's order of first
/// appearance by identity id; orphans' last.
pub(crate) fn print_ops(plan: &Plan, policy: &CompiledPolicy, style: Style) {
    let mut people: BTreeMap<&str, Vec<&PlannedOp>> = BTreeMap::new();
    let mut nobody: Vec<&PlannedOp> = Vec::new();
    for op in &plan.ops {
        match &op.identity {
            Some(who) => people.entry(who.as_str()).or_default().push(op),
            None => nobody.push(op),
        }
    }
    for (who, ops) in &people {
        let header = format!("{who}: {}", event(policy, ops));
        outln!("{}", style.paint("1", &header));
        for op in ops {
            print_op(op, style);
        }
    }
    if !nobody.is_empty() {
        outln!("{}", style.paint("1", "accounts no identity explains:"));
        for op in nobody {
            print_op(op, style);
        }
    }
}
