//! The body of `GET /api/v1/targets` (and of one target's `GET`, `POST` and `PUT`
//! answers): every scrape target with its definition and health, as the server writes
//! it and the UI's Targets page reads it.

use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// `GET /api/v1/targets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetsView {
    pub jobs: Vec<JobView>,
}

/// The targets of one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub job: String,
    pub targets: Vec<TargetView>,
}

/// One target: its definition (in the shape `POST` accepts) and its health, overall and
/// per profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetView {
    pub id: String,
    /// `scheme://address`.
    pub url: String,
    /// All labels of the target's series but `__name__`.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub labels: Labels,
    /// `down` if any profile's last scrape failed, `up` if at least one succeeded and none
    /// failed, else `unknown`.
    pub health: Health,
    /// Start of the most recent scrape (unix ms).
    pub last_scrape: Option<i64>,
    pub last_duration_ms: Option<u64>,
    /// The error of a failing profile, prefixed with its name.
    pub last_error: Option<String>,
    pub last_body_bytes: Option<u64>,
    pub source: Source,
    pub job: String,
    pub address: String,
    pub scheme: String,
    pub interval: String,
    pub timeout: String,
    /// Profile names, as `POST` takes them.
    pub profiles: Vec<String>,
    /// Per profile: its URL and state.
    pub scrapes: Vec<ProfileView>,
}

/// The state of one (target, profile) loop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileView {
    pub profile: String,
    pub url: String,
    #[serde(flatten)]
    pub status: ScrapeStatus,
}

/// The state of one loop, as the targets API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScrapeStatus {
    pub health: Health,
    /// Start of the last scrape (unix ms).
    pub last_scrape: Option<i64>,
    pub last_duration_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Size of the last body received (compressed, as sent).
    pub last_body_bytes: Option<u64>,
    /// Scrapes done, failed, and ticks skipped because the previous scrape still ran.
    pub scrapes: u64,
    pub failures: u64,
    pub skipped_ticks: u64,
    /// Sample values stored by this loop.
    pub samples: u64,
}

/// `"up"`, `"down"` or `"unknown"` (not scraped yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Unknown,
    Up,
    Down,
}

impl Health {
    /// The name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// Where a target was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The configuration file (or the embedded self-scrape): read-only through the API.
    #[default]
    Config,
    /// Created through `POST /api/v1/targets`.
    Api,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_reads_back_as_written() {
        let mut labels = Labels::new();
        labels.insert("job", "api");
        let view = TargetsView {
            jobs: vec![JobView {
                job: "api".into(),
                targets: vec![TargetView {
                    id: "t1".into(),
                    labels,
                    health: Health::Down,
                    last_duration_ms: Some(12),
                    source: Source::Api,
                    scrapes: vec![ProfileView {
                        profile: "process_cpu".into(),
                        status: ScrapeStatus {
                            health: Health::Down,
                            last_error: Some("refused".into()),
                            ..ScrapeStatus::default()
                        },
                        ..ProfileView::default()
                    }],
                    ..TargetView::default()
                }],
            }],
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["jobs"][0]["targets"][0]["health"], "down");
        assert_eq!(json["jobs"][0]["targets"][0]["source"], "api");
        assert_eq!(
            json["jobs"][0]["targets"][0]["scrapes"][0]["last_error"],
            "refused"
        );
        let back: TargetsView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }
}
