//! Prometheus target relabelling (`relabel_configs`): the rules as the config file writes
//! them, checked when the file is read, and [`apply`] with Prometheus' semantics.
//!
//! Regexes are anchored at both ends, as in Prometheus. `hashmod` hashes with xxh3 rather
//! than Prometheus' MD5, so shards are stable within Cinder but differ from Prometheus'.

use regex::Regex;
use serde::Deserialize;
use shared::labels::{Labels, is_valid_label_name};
use xxhash_rust::xxh3::xxh3_64;

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sets `target_label` to `replacement` (with `$1`-style groups) when `regex` matches.
    Replace,
    /// Drops the target unless the joined source labels match `regex`.
    Keep,
    /// Drops the target when the joined source labels match `regex`.
    Drop,
    /// Keeps the target only when the joined source labels equal `target_label`'s value.
    KeepEqual,
    /// Drops the target when the joined source labels equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to a hash of the joined source labels modulo `modulus`.
    HashMod,
    /// Copies labels whose names match `regex` to the name given by `replacement`.
    LabelMap,
    /// Removes labels whose names match `regex`.
    LabelDrop,
    /// Removes labels whose names do not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source labels in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source labels in upper case.
    Uppercase,
}

impl Action {
    /// The name the config file uses.
    pub fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// One `relabel_configs` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    target_label: Option<String>,
    regex: Option<String>,
    modulus: Option<u64>,
    replacement: Option<String>,
    action: Option<Action>,
}

/// A checked relabelling rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct Rule {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    modulus: u64,
    replacement: String,
    action: Action,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Rule, String> {
        let action = raw.action.unwrap_or(Action::Replace);
        let pattern = raw.regex.clone().unwrap_or_else(|| "(.*)".to_owned());
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("invalid relabel regex {pattern:?}: {e}"))?;
        let target_label = raw.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target_label.is_empty() {
            return Err(format!(
                "relabel action {} requires target_label",
                action.name()
            ));
        }
        if action == Action::HashMod && raw.modulus.unwrap_or(0) == 0 {
            return Err("relabel action hashmod requires a non-zero modulus".into());
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!raw.source_labels.is_empty()
                || raw.target_label.is_some()
                || raw.modulus.is_some()
                || raw.separator.is_some()
                || raw.replacement.is_some())
        {
            return Err(format!("relabel action {} takes only regex", action.name()));
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual) && raw.regex.is_some() {
            return Err("relabel actions keepequal and dropequal take no regex".into());
        }
        for name in &raw.source_labels {
            if !is_valid_label_name(name) {
                return Err(format!("invalid source label name {name:?}"));
            }
        }
        // A target label may hold `$1`-style references (replace only); others must be names.
        if !target_label.is_empty()
            && action != Action::Replace
            && !is_valid_label_name(&target_label)
        {
            return Err(format!("invalid target_label {target_label:?}"));
        }
        Ok(Rule {
            source_labels: raw.source_labels,
            separator: raw.separator.unwrap_or_else(|| ";".to_owned()),
            target_label,
            regex,
            modulus: raw.modulus.unwrap_or(0),
            replacement: raw.replacement.unwrap_or_else(|| "$1".to_owned()),
            action,
        })
    }
}

/// Runs the rules over `labels` in order; `None` when a rule drops the target.
pub fn apply(rules: &[Rule], mut labels: Labels) -> Option<Labels> {
    for rule in rules {
        labels = rule.apply(labels)?;
    }
    Some(labels)
}

impl Rule {
    fn apply(&self, mut labels: Labels) -> Option<Labels> {
        let value = self
            .source_labels
            .iter()
            .map(|name| labels.get(name).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            Action::Drop if self.regex.is_match(&value) => return None,
            Action::Keep if !self.regex.is_match(&value) => return None,
            Action::Drop | Action::Keep => {}
            Action::DropEqual if labels.get(&self.target_label) == Some(value.as_str()) => {
                return None;
            }
            Action::KeepEqual if labels.get(&self.target_label) != Some(value.as_str()) => {
                return None;
            }
            Action::DropEqual | Action::KeepEqual => {}
            Action::Replace => {
                // Without a match nothing is replaced.
                if let Some(captures) = self.regex.captures(&value) {
                    let mut target = String::new();
                    captures.expand(&self.target_label, &mut target);
                    if is_valid_label_name(&target) {
                        let mut replaced = String::new();
                        captures.expand(&self.replacement, &mut replaced);
                        if replaced.is_empty() {
                            labels.remove(&target);
                        } else {
                            labels.insert(target, replaced);
                        }
                    }
                }
            }
            Action::Lowercase => {
                labels.insert(self.target_label.clone(), value.to_lowercase());
            }
            Action::Uppercase => {
                labels.insert(self.target_label.clone(), value.to_uppercase());
            }
            Action::HashMod => {
                let shard = xxh3_64(value.as_bytes()) % self.modulus;
                labels.insert(self.target_label.clone(), shard.to_string());
            }
            Action::LabelMap => {
                let renamed: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| self.regex.is_match(name))
                    .map(|(name, value)| {
                        (
                            self.regex
                                .replace(name, self.replacement.as_str())
                                .into_owned(),
                            value.to_owned(),
                        )
                    })
                    .collect();
                for (name, value) in renamed {
                    if is_valid_label_name(&name) {
                        labels.insert(name, value);
                    }
                }
            }
            Action::LabelDrop | Action::LabelKeep => {
                let keep_matching = self.action == Action::LabelKeep;
                let doomed: Vec<String> = labels
                    .iter()
                    .filter(|(name, _)| self.regex.is_match(name) != keep_matching)
                    .map(|(name, _)| name.to_owned())
                    .collect();
                for name in doomed {
                    labels.remove(&name);
                }
            }
        }
        Some(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<Rule> {
        serde_norway::from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn replace_uses_anchored_regexes_and_groups() {
        let rules = rules(
            r#"
- source_labels: [__address__]
  regex: '([^:]+):\d+'
  target_label: host
- source_labels: [__address__]
  regex: 'api'          # anchored: does not match "api-1:80"
  target_label: never
  replacement: x
- source_labels: [env, __address__]
  separator: '/'
  regex: '(prod)/(.*)'
  target_label: '${1}_addr'
  replacement: '$2'
"#,
        );
        let out = apply(
            &rules,
            labels(&[("__address__", "api-1:80"), ("env", "prod")]),
        )
        .unwrap();
        assert_eq!(out.get("host"), Some("api-1"));
        assert_eq!(out.get("never"), None);
        assert_eq!(out.get("prod_addr"), Some("api-1:80"));
    }

    #[test]
    fn an_empty_replacement_deletes_the_label_and_no_match_changes_nothing() {
        let rules = rules(
            "- {source_labels: [a], regex: 'x', target_label: b, replacement: ''}\n\
             - {source_labels: [a], regex: 'nomatch', target_label: a, replacement: 'changed'}",
        );
        let out = apply(&rules, labels(&[("a", "x"), ("b", "old")])).unwrap();
        assert_eq!(out, labels(&[("a", "x")]));
    }

    #[test]
    fn keep_and_drop_filter_targets() {
        let keep = rules("- {source_labels: [env], regex: 'prod|staging', action: keep}");
        assert!(apply(&keep, labels(&[("env", "prod")])).is_some());
        assert!(apply(&keep, labels(&[("env", "production")])).is_none());
        assert!(apply(&keep, labels(&[])).is_none());
        let drop = rules("- {source_labels: [env], regex: 'dev', action: drop}");
        assert!(apply(&drop, labels(&[("env", "dev")])).is_none());
        assert!(apply(&drop, labels(&[("env", "prod")])).is_some());
    }

    #[test]
    fn labeldrop_labelkeep_and_labelmap_work_on_names() {
        let input = labels(&[("__meta_team", "a"), ("tmp_x", "1"), ("job", "j")]);
        let out = apply(
            &rules("- {regex: 'tmp_.*', action: labeldrop}"),
            input.clone(),
        )
        .unwrap();
        assert_eq!(out, labels(&[("__meta_team", "a"), ("job", "j")]));
        let out = apply(
            &rules("- {regex: 'job|__.*', action: labelkeep}"),
            input.clone(),
        )
        .unwrap();
        assert_eq!(out, labels(&[("__meta_team", "a"), ("job", "j")]));
        let out = apply(
            &rules("- {regex: '__meta_(.+)', action: labelmap, replacement: 'meta_$1'}"),
            input,
        )
        .unwrap();
        assert_eq!(out.get("meta_team"), Some("a"));
    }

    #[test]
    fn case_hashmod_and_equality_actions() {
        let rules = rules(
            "- {source_labels: [a], target_label: lower, action: lowercase}\n\
             - {source_labels: [a], target_label: shard, action: hashmod, modulus: 4}\n\
             - {source_labels: [a], target_label: copy, action: keepequal}",
        );
        assert!(
            apply(&rules, labels(&[("a", "MiXed")])).is_none(),
            "copy != a"
        );
        let out = apply(&rules, labels(&[("a", "MiXed"), ("copy", "MiXed")])).unwrap();
        assert_eq!(out.get("lower"), Some("mixed"));
        let shard: u64 = out.get("shard").unwrap().parse().unwrap();
        assert!(shard < 4);
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let cases = [
            (
                "- {source_labels: [a], regex: '(', target_label: b}",
                "invalid relabel regex",
            ),
            ("- {source_labels: [a]}", "requires target_label"),
            ("- {action: hashmod, target_label: b}", "modulus"),
            (
                "- {action: labeldrop, regex: a, target_label: b}",
                "takes only regex",
            ),
            ("- {action: explode}", "unknown variant"),
            ("- {source_labels: [a], target: b}", "unknown field"),
        ];
        for (yaml, want) in cases {
            let err = serde_norway::from_str::<Vec<Rule>>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
