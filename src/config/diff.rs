//! Owns: what differs between two schemas, in words: tables and columns
//! added or removed, privacy changed, types changed, recipients changed,
//! offices and write rights changed, anything else the canonical text
//! holds. Both offices compute it from their own schema and the canonical
//! text the other sent in its Hello, so each says the same thing from its
//! side.
//!
//! Must not: read files or decide whether a change is allowed (the replica
//! decides what it can migrate).

use std::collections::{BTreeMap, BTreeSet};

/// A schema as its canonical text describes it.
#[derive(Debug, Default, PartialEq)]
struct Described {
    groups: BTreeMap<String, BTreeSet<String>>,
    /// table → column → (privacy, type, required)
    tables: BTreeMap<String, BTreeMap<String, Column>>,
    /// The listed offices (None: no `offices` line).
    offices: Option<BTreeSet<String>>,
    /// (table, action, column) → offices ("-" for none).
    rights: BTreeMap<(String, String, Option<String>), String>,
    /// Lines of kinds this build does not know, kept whole.
    other: BTreeSet<String>,
}

fn describe(text: &str) -> Described {
    let mut d = Described::default();
    let mut table: Option<String> = None;
    for line in text.lines().skip(1) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("group"), Some(name), keys) => {
                let keys = keys
                    .unwrap_or("")
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect();
                d.groups.insert(name.to_string(), keys);
            }
            (Some("offices"), Some(list), None) => {
                d.offices = Some(list.split(',').map(str::to_string).collect());
            }
            (Some("rights"), Some(table), Some(rest)) => {
                let words: Vec<&str> = rest.split(' ').collect();
                let key = match words.as_slice() {
                    [action, list] => Some(((*action).to_string(), None, *list)),
                    [action, column, list] => {
                        Some(((*action).to_string(), Some((*column).to_string()), *list))
                    }
                    _ => None,
                };
                match key {
                    Some((action, column, list)) => {
                        d.rights
                            .insert((table.to_string(), action, column), list.to_string());
                    }
                    None => {
                        d.other.insert(line.to_string());
                    }
                }
            }
            (Some("table"), Some(name), None) => {
                table = Some(name.to_string());
                d.tables.entry(name.to_string()).or_default();
            }
            (Some("column"), Some(name), Some(rest)) if table.is_some() => {
                let (rest, required) = match rest.strip_suffix(" required") {
                    Some(rest) => (rest, true),
                    None => (rest, false),
                };
                let (privacy, ty) = match rest.split_once(" type ") {
                    Some((p, t)) => (p.to_string(), Some(t.to_string())),
                    None => (rest.to_string(), None),
                };
                let t = table.clone().unwrap_or_default();
                d.tables
                    .entry(t)
                    .or_default()
                    .insert(name.to_string(), (privacy, ty, required));
            }
            _ => {
                d.other.insert(line.to_string());
            }
        }
    }
    d
}

fn privacy_words(privacy: &str) -> String {
    match privacy.strip_prefix("sealed ") {
        Some(group) => format!("sealed to `{group}`"),
        None => privacy.to_string(),
    }
}

/// Offices of a rights line as people read them.
fn office_words(list: Option<&String>) -> String {
    match list.map(String::as_str) {
        None => "every office".into(),
        Some("-") => "no office".into(),
        Some(list) => list.replace(',', ", "),
    }
}

fn type_words(ty: &Option<String>) -> String {
    match ty {
        Some(t) => format!("typed {t}"),
        None => "untyped".into(),
    }
}

/// A column as the canonical text gives it: privacy, type, required.
type Column = (String, Option<String>, bool);

/// The differences between this office's schema (`ours`, canonical text)
/// and `peer`'s, one sentence each; empty when they are the same.
pub fn differences(ours: &str, theirs: &str, peer: &str) -> Vec<String> {
    let (a, b) = (describe(ours), describe(theirs));
    let mut out = Vec::new();
    let only = |here: bool| {
        if here {
            "only in this office's schema".to_string()
        } else {
            format!("only in {peer}'s schema")
        }
    };
    for name in a
        .tables
        .keys()
        .chain(b.tables.keys())
        .collect::<BTreeSet<_>>()
    {
        match (a.tables.get(name), b.tables.get(name)) {
            (Some(_), None) => out.push(format!("table `{name}` is {}", only(true))),
            (None, Some(_)) => out.push(format!("table `{name}` is {}", only(false))),
            (Some(ca), Some(cb)) => {
                for col in ca.keys().chain(cb.keys()).collect::<BTreeSet<_>>() {
                    match (ca.get(col), cb.get(col)) {
                        (Some(_), None) => {
                            out.push(format!("column `{name}.{col}` is {}", only(true)))
                        }
                        (None, Some(_)) => {
                            out.push(format!("column `{name}.{col}` is {}", only(false)))
                        }
                        (Some((pa, ta, ra)), Some((pb, tb, rb))) => {
                            if ra != rb {
                                let words = |r: &bool| if *r { "required" } else { "optional" };
                                out.push(format!(
                                    "column `{name}.{col}` is {} here and {} at {peer}",
                                    words(ra),
                                    words(rb)
                                ));
                            }
                            if pa != pb {
                                out.push(format!(
                                    "column `{name}.{col}` is {} here and {} at {peer}",
                                    privacy_words(pa),
                                    privacy_words(pb)
                                ));
                            }
                            if ta != tb {
                                out.push(format!(
                                    "column `{name}.{col}` is {} here and {} at {peer}",
                                    type_words(ta),
                                    type_words(tb)
                                ));
                            }
                        }
                        (None, None) => {}
                    }
                }
            }
            (None, None) => {}
        }
    }
    for name in a
        .groups
        .keys()
        .chain(b.groups.keys())
        .collect::<BTreeSet<_>>()
    {
        match (a.groups.get(name), b.groups.get(name)) {
            (Some(_), None) => out.push(format!("seal group `{name}` is {}", only(true))),
            (None, Some(_)) => out.push(format!("seal group `{name}` is {}", only(false))),
            (Some(ka), Some(kb)) if ka != kb => {
                let here = ka.difference(kb).count();
                let there = kb.difference(ka).count();
                out.push(format!(
                    "seal group `{name}` has other recipients: {here} only here, {there} only at {peer}"
                ));
            }
            _ => {}
        }
    }
    if a.offices != b.offices {
        let list = |o: &Option<BTreeSet<String>>| match o {
            Some(set) => set.iter().cloned().collect::<Vec<_>>().join(", "),
            None => "none".into(),
        };
        out.push(format!(
            "the offices listed differ: {} here, {} at {peer}",
            list(&a.offices),
            list(&b.offices)
        ));
    }
    for key in a
        .rights
        .keys()
        .chain(b.rights.keys())
        .collect::<BTreeSet<_>>()
    {
        let (here, there) = (a.rights.get(key), b.rights.get(key));
        if here != there {
            let (table, action, column) = key;
            let what = match column {
                Some(c) => format!("update `{table}.{c}`"),
                None => format!("{action} rows of `{table}`"),
            };
            out.push(format!(
                "write rights differ: who may {what} is {} here and {} at {peer}",
                office_words(here),
                office_words(there)
            ));
        }
    }
    let here: Vec<_> = a.other.difference(&b.other).collect();
    let there: Vec<_> = b.other.difference(&a.other).collect();
    if !here.is_empty() || !there.is_empty() {
        out.push(format!(
            "other settings differ ({} lines only here, {} only at {peer}); a newer puente may say what they are",
            here.len(),
            there.len()
        ));
    }
    out
}

/// What an admin should do while two offices' schemas differ.
pub fn advice(peer: &str) -> String {
    format!(
        "make both offices use the same schema file: copy the newer one to the other office (to {peer}, or from it) and reload or restart puente there; `puente check` prints each schema's hash. Meanwhile each office keeps its own writes; they cross once the schemas match"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "puente-schema-v1
group mx age1aaa,age1bbb
table outreach_events
column capacity shared type integer
column title shared
table residents
column full_name sealed mx
column nationality shared
";

    #[test]
    fn the_same_schema_has_no_differences() {
        assert!(differences(A, A, "san-diego").is_empty());
    }

    #[test]
    fn each_kind_of_change_is_said_in_words() {
        let b = "puente-schema-v1
group mx age1aaa,age1ccc
table outreach_events
column capacity shared
column title shared required
column notes shared
table residents
column full_name sealed mx
column nationality sealed mx
table volunteers
column name shared
offices san-diego,tijuana
rights residents delete tijuana
rights residents update full_name -
flavour vanilla
";
        let d = differences(A, b, "san-diego");
        let want = [
            "table `volunteers` is only in san-diego's schema",
            "column `outreach_events.notes` is only in san-diego's schema",
            "column `outreach_events.capacity` is typed integer here and untyped at san-diego",
            "column `outreach_events.title` is optional here and required at san-diego",
            "column `residents.nationality` is shared here and sealed to `mx` at san-diego",
            "seal group `mx` has other recipients: 1 only here, 1 only at san-diego",
            "the offices listed differ: none here, san-diego, tijuana at san-diego",
            "write rights differ: who may delete rows of `residents` is every office here and tijuana at san-diego",
            "write rights differ: who may update `residents.full_name` is every office here and no office at san-diego",
            "other settings differ (0 lines only here, 1 only at san-diego); a newer puente may say what they are",
        ];
        for w in want {
            assert!(d.iter().any(|s| s == w), "missing {w:?} in {d:#?}");
        }
        assert_eq!(d.len(), want.len(), "{d:#?}");
        // From the other side, the same facts.
        let back = differences(b, A, "tijuana");
        assert!(back.contains(&"table `volunteers` is only in this office's schema".to_string()));
        assert!(
            back.contains(
                &"column `residents.nationality` is sealed to `mx` here and shared at tijuana"
                    .to_string()
            )
        );
        assert!(advice("san-diego").contains("same schema file"));
    }
}
