//! Labels of pushed profiles. Agents send label names Prometheus would refuse
//! (`otel.scope.name`); here they are sanitized (`otel_scope_name`), and a label that
//! cannot be saved costs that label, not the profile.

use proto::pyroscope::RawProfileSeries;
use shared::labels::{Labels, NAME_LABEL, sanitize_label_name};

/// Pyroscope's label for the application name.
pub const SERVICE_LABEL: &str = "service_name";
/// Pyroscope's label saying whether a pushed series is cumulative (`"false"`: the agent
/// sends deltas itself).
pub const DELTA_LABEL: &str = "__delta__";

/// The profile suffix of a Pyroscope name (`cpu` of `app.cpu{…}`), `""` when the name has
/// none Cinder knows.
pub fn profile_suffix(name: &str) -> &str {
    let app = name.split('{').next().unwrap_or("").trim();
    app.rsplit_once('.')
        .map(|(_, suffix)| suffix)
        .filter(|suffix| parca_name_of(suffix).is_some())
        .unwrap_or("")
}

/// The labels of a Pyroscope `name`: `app.cpu{env=prod,region=eu}` →
/// `service_name="app"`, `__name__="process_cpu"`, `env`, `region`.
///
/// A known profile suffix (`.cpu`, `.alloc_space`, …) picks `__name__` as Parca names
/// it; without one, the whole name is the service and `__name__` is `process_cpu`, what
/// Pyroscope's agents push by default.
pub fn pyroscope_labels(name: &str) -> Result<Labels, String> {
    let (app, tags) = match name.find('{') {
        Some(open) => {
            let Some(inner) = name[open + 1..].strip_suffix('}') else {
                return Err(format!("{name:?}: the label list must end with '}}'"));
            };
            (&name[..open], inner)
        }
        None => (name, ""),
    };
    let app = app.trim();
    if app.is_empty() {
        return Err(format!("{name:?} has no application name"));
    }
    let (service, profile) = match app.rsplit_once('.') {
        Some((service, suffix)) => match parca_name_of(suffix) {
            Some(profile) => (service, profile),
            None => (app, "process_cpu"),
        },
        None => (app, "process_cpu"),
    };
    if service.trim().is_empty() {
        // `.wall`: a profile suffix and no application before it.
        return Err(format!("{name:?} has no application name"));
    }
    let mut labels = Labels::new();
    for pair in tags.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            tracing::debug!(pair, "pyroscope tag without '=' dropped");
            continue;
        };
        insert_sanitized(&mut labels, key.trim(), value.trim());
    }
    labels.insert(SERVICE_LABEL, service);
    labels.insert(NAME_LABEL, profile);
    Ok(labels)
}

/// Parca's profile name for a Pyroscope profile suffix.
fn parca_name_of(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "cpu" | "itimer" => "process_cpu",
        "wall" => "wall",
        "alloc_objects" | "alloc_space" | "inuse_objects" | "inuse_space" => "memory",
        "goroutines" | "goroutine" => "goroutine",
        "mutex_count" | "mutex_duration" => "mutex",
        "block_count" | "block_duration" => "block",
        _ => return None,
    })
}

/// Adds a label under its sanitized name; a name that cannot be sanitized, or a
/// reserved `__` name, is dropped (and logged) instead of refusing the profile.
pub fn insert_sanitized(labels: &mut Labels, name: &str, value: &str) {
    match sanitize_label_name(name) {
        Some(clean) if !clean.starts_with("__") => {
            labels.insert(clean, value);
        }
        _ => tracing::debug!(name, "label dropped: not a usable label name"),
    }
}

/// The Cinder labels of a Connect Push series, and whether the server computes deltas for
/// it (unless `__delta__="false"`).
pub fn series_labels(series: &RawProfileSeries) -> (Labels, bool) {
    let mut labels = Labels::new();
    let mut server_delta = true;
    for label in &series.labels {
        match label.name.as_str() {
            NAME_LABEL => {
                labels.insert(NAME_LABEL, label.value.as_str());
            }
            DELTA_LABEL => server_delta = label.value != "false",
            name => insert_sanitized(&mut labels, name, &label.value),
        }
    }
    (labels, server_delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyroscope_names_map_to_parca_labels() {
        let l = pyroscope_labels(
            "ride-sharing-app.cpu{region=eu-north,otel.scope.name=x, vehicle = car}",
        )
        .unwrap();
        assert_eq!(l.get("service_name"), Some("ride-sharing-app"));
        assert_eq!(l.get("__name__"), Some("process_cpu"));
        assert_eq!(l.get("region"), Some("eu-north"));
        assert_eq!(l.get("otel_scope_name"), Some("x"));
        assert_eq!(l.get("vehicle"), Some("car"));
        let l = pyroscope_labels("app.alloc_space").unwrap();
        assert_eq!(l.get("__name__"), Some("memory"));
        let l = pyroscope_labels("my.service{}").unwrap();
        assert_eq!(l.get("service_name"), Some("my.service"));
        assert_eq!(l.get("__name__"), Some("process_cpu"));
        assert_eq!(profile_suffix("app.wall{a=b}"), "wall");
        assert_eq!(profile_suffix("my.service"), "");
    }

    #[test]
    fn bad_pyroscope_names_are_errors_and_bad_tags_are_dropped() {
        assert!(
            pyroscope_labels("app{a=b")
                .unwrap_err()
                .contains("must end")
        );
        assert!(pyroscope_labels("{a=b}").is_err());
        // Found by the `pyroscope` fuzz target: a suffix alone gave an empty service_name.
        for name in [".wall", " .cpu{a=b}", ".alloc_space"] {
            let err = pyroscope_labels(name).unwrap_err();
            assert!(err.contains("no application name"), "{name:?}: {err}");
        }
        assert_eq!(
            pyroscope_labels(".unknown").unwrap().get("service_name"),
            Some(".unknown"),
            "without a known suffix the whole name is the service"
        );
        let l = pyroscope_labels("app{__name__=evil,=x,novalue,9lives=1}").unwrap();
        assert_eq!(l.get("__name__"), Some("process_cpu"));
        assert_eq!(l.get("_9lives"), Some("1"));
        assert_eq!(l.len(), 3);
    }
}
