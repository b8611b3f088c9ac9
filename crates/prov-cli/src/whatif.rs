//! `prov what-if`: the pilot before a rollout, as a table, JSON or Markdown.

use std::fmt::Write as _;

use prov_resolver::WhatIf;

/// `+ ldap:staff (rule all -> role employee -> ldap:staff)`.
fn access(sign: char, c: &prov_resolver::AccessChange) -> String {
    let mut out = format!("{sign} {}:{}", c.target, c.entitlement);
    if !c.because.is_empty() {
        let _ = write!(out, "  because {}", c.because.join("; "));
    }
    out
}

/// For people at a terminal.
pub(crate) fn table(w: &WhatIf, from: &str, to: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "what-if {from} -> {to}: {} of {} identities change",
        w.changes.len(),
        w.identities
    );
    for c in &w.changes {
        let _ = writeln!(out, "{}:", c.identity);
        for t in &c.accounts_gained {
            let _ = writeln!(out, "  + account on {t}");
        }
        for t in &c.accounts_lost {
            let _ = writeln!(out, "  - account on {t}");
        }
        for r in &c.roles_gained {
            let _ = writeln!(out, "  + role {r}");
        }
        for r in &c.roles_lost {
            let _ = writeln!(out, "  - role {r}");
        }
        for g in &c.gains {
            let _ = writeln!(out, "  {}", access('+', g));
        }
        for l in &c.losses {
            let _ = writeln!(out, "  {}", access('-', l));
        }
        for s in &c.sod_broken {
            let _ = writeln!(out, "  SOD newly breaks rule {s}");
        }
    }
    if !w.targets.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16} {:>8} {:>8} {:>10} {:>10}",
            "target", "gains", "losses", "+accounts", "-accounts"
        );
        for (t, n) in &w.targets {
            let _ = writeln!(
                out,
                "{:<16} {:>8} {:>8} {:>10} {:>10}",
                t.as_str(),
                n.gains,
                n.losses,
                n.accounts_gained,
                n.accounts_lost
            );
        }
    }
    if !w.roles.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:>8} {:>8}", "role", "gained", "lost");
        for (r, n) in &w.roles {
            let _ = writeln!(out, "{r:<24} {:>8} {:>8}", n.gained, n.lost);
        }
    }
    out
}

/// For a pull-request comment.
pub(crate) fn markdown(w: &WhatIf, from: &str, to: &str) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### What-if: `{}` -> `{}`\n\n{} of {} identities change.\n",
        cell(from),
        cell(to),
        w.changes.len(),
        w.identities
    );
    let sod: Vec<String> = w
        .changes
        .iter()
        .flat_map(|c| {
            c.sod_broken.iter().map(move |s| {
                format!(
                    "- **{}** newly breaks separation-of-duties rule `{}`",
                    c.identity,
                    cell(s)
                )
            })
        })
        .collect();
    if !sod.is_empty() {
        let _ = writeln!(out, "**Separation of duties**\n\n{}\n", sod.join("\n"));
    }
    if !w.targets.is_empty() {
        out.push_str("| target | gains | losses | accounts gained | accounts lost |\n|---|---:|---:|---:|---:|\n");
        for (t, n) in &w.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(t.as_str()),
                n.gains,
                n.losses,
                n.accounts_gained,
                n.accounts_lost
            );
        }
        out.push('\n');
    }
    if !w.roles.is_empty() {
        out.push_str("| role | identities gaining | identities losing |\n|---|---:|---:|\n");
        for (r, n) in &w.roles {
            let _ = writeln!(out, "| {} | {} | {} |", cell(r), n.gained, n.lost);
        }
        out.push('\n');
    }
    if !w.changes.is_empty() {
        out.push_str("<details><summary>Per identity</summary>\n\n");
        for c in &w.changes {
            let _ = writeln!(out, "- **{}**", c.identity);
            for g in &c.gains {
                let _ = writeln!(
                    out,
                    "  - gains `{}:{}` ({})",
                    cell(g.target.as_str()),
                    cell(g.entitlement.as_str()),
                    cell(&g.because.join("; "))
                );
            }
            for l in &c.losses {
                let _ = writeln!(
                    out,
                    "  - loses `{}:{}` ({})",
                    cell(l.target.as_str()),
                    cell(l.entitlement.as_str()),
                    cell(&l.because.join("; "))
                );
            }
        }
        out.push_str("\n</details>\n");
    }
    out
}
