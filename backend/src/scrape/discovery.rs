//! `file_sd_configs`: target groups in JSON (`.json`) or YAML (`.yml`, `.yaml`) files, in
//! Prometheus' format (`[{targets: [...], labels: {...}}]`), with `*`/`?` allowed in the
//! file name. Files are polled: re-read when their modification time or size changes, and
//! every `refresh_interval` anyway. A file that cannot be read or parsed keeps its last good
//! groups (and is logged).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use crate::config::file::{StaticConfig, check_address};

/// How often files are checked for changes.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// Groups per job, per file.
pub type Discovered = BTreeMap<String, BTreeMap<PathBuf, Vec<StaticConfig>>>;

/// Reads one target file.
pub(crate) fn read_groups(path: &Path) -> Result<Vec<StaticConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let groups: Vec<StaticConfig> = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        Some("yml" | "yaml") => {
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_norway::from_str(&text).map_err(|e| e.to_string())?
            }
        }
        _ => return Err("target files must end in .json, .yml or .yaml".into()),
    };
    for group in &groups {
        for target in &group.targets {
            check_address(target)?;
        }
        for name in group.labels.keys() {
            if !shared::labels::is_valid_label_name(name) {
                return Err(format!("invalid label name {name:?}"));
            }
        }
    }
    Ok(groups)
}

/// Whether a file name matches a pattern with `*` (any run) and `?` (one character).
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer wildcard matching with backtracking to the last `*`.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The files a pattern names now (sorted).
pub(crate) fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if pattern.is_file() {
            vec![pattern.to_owned()]
        } else {
            Vec::new()
        };
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| name_matches(name, n))
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// What the poller remembers of one file.
#[derive(Debug)]
struct Seen {
    stamp: (Option<SystemTime>, u64),
    read_at: Instant,
    groups: Vec<StaticConfig>,
}

/// Polls the files of every job's `file_sd_configs`.
#[derive(Debug, Default)]
pub(crate) struct Poller {
    seen: BTreeMap<PathBuf, Seen>,
}

impl Poller {
    /// Re-reads what changed; returns the groups of every job with file SD.
    /// `jobs`: (job name, [(pattern, refresh interval)]).
    pub(crate) fn poll(&mut self, jobs: &[(String, Vec<(PathBuf, Duration)>)]) -> Discovered {
        let mut out = Discovered::new();
        let mut alive = BTreeMap::new();
        for (job, patterns) in jobs {
            let files = out.entry(job.clone()).or_default();
            for (pattern, refresh) in patterns {
                for path in expand(pattern) {
                    let stamp = std::fs::metadata(&path)
                        .map(|m| (m.modified().ok(), m.len()))
                        .unwrap_or((None, 0));
                    let fresh = self
                        .seen
                        .get(&path)
                        .is_some_and(|s| s.stamp == stamp && s.read_at.elapsed() < *refresh);
                    if !fresh {
                        match read_groups(&path) {
                            Ok(groups) => {
                                tracing::debug!(path = %path.display(), groups = groups.len(), "target file read");
                                self.seen.insert(
                                    path.clone(),
                                    Seen {
                                        stamp,
                                        read_at: Instant::now(),
                                        groups,
                                    },
                                );
                            }
                            Err(err) => {
                                tracing::warn!(path = %path.display(), %err, "cannot use target file; keeping its last good targets");
                                if let Some(seen) = self.seen.get_mut(&path) {
                                    seen.stamp = stamp;
                                    seen.read_at = Instant::now();
                                }
                            }
                        }
                    }
                    if let Some(seen) = self.seen.get(&path) {
                        files.insert(path.clone(), seen.groups.clone());
                        alive.insert(path, ());
                    }
                }
            }
        }
        self.seen.retain(|path, _| alive.contains_key(path));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_file_names() {
        assert!(name_matches("*.json", "a.json"));
        assert!(name_matches("targets-?.yml", "targets-1.yml"));
        assert!(name_matches("*", "anything"));
        assert!(name_matches("a*b*c", "aXXbYYc"));
        assert!(!name_matches("*.json", "a.yaml"));
        assert!(!name_matches("targets-?.yml", "targets-10.yml"));
    }

    #[test]
    fn files_are_read_once_and_again_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, r#"[{"targets": ["x:1"], "labels": {"zone": "eu"}}]"#).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "- targets: ['y:2']\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "").unwrap();
        let jobs = vec![(
            "j".to_owned(),
            vec![
                (dir.path().join("*.json"), Duration::from_secs(300)),
                (dir.path().join("*.yaml"), Duration::from_secs(300)),
            ],
        )];
        let mut poller = Poller::default();
        let found = poller.poll(&jobs);
        assert_eq!(found["j"].len(), 2);
        assert_eq!(found["j"][&a][0].labels["zone"], "eu");

        // A broken edit keeps the last good groups; a good one replaces them.
        std::fs::write(&a, "[{").unwrap();
        assert_eq!(poller.poll(&jobs)["j"][&a][0].targets, ["x:1"]);
        std::fs::write(&a, r#"[{"targets": ["x:1", "z:3"]}]"#).unwrap();
        assert_eq!(poller.poll(&jobs)["j"][&a][0].targets, ["x:1", "z:3"]);

        std::fs::remove_file(&a).unwrap();
        assert_eq!(poller.poll(&jobs)["j"].len(), 1);
        assert!(read_groups(&dir.path().join("ignored.txt")).is_err());
    }
}
