//! The targets API (`/api/v1/targets`): listing with health, and creating, replacing
//! and deleting targets made through the UI.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ApiError, get_json, send_json};

use shared::targets::TargetsView;
pub(crate) use shared::targets::{JobView as Job, TargetView as Target};

/// `GET /api/v1/targets`.
pub(crate) async fn targets() -> Result<Vec<Job>, ApiError> {
    let resp: TargetsView = get_json("/api/v1/targets", None).await?;
    Ok(resp.jobs)
}

/// What the target form sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct TargetForm {
    /// Job name.
    pub(crate) job: String,
    /// `host:port`.
    pub(crate) address: String,
    /// `http` or `https`.
    pub(crate) scheme: String,
    /// Scrape interval, e.g. `10s`.
    pub(crate) interval: String,
    /// Scrape timeout; empty for the default.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) timeout: String,
    /// Profile names to scrape; empty for the defaults.
    pub(crate) profiles: Vec<String>,
    /// Extra labels.
    pub(crate) labels: BTreeMap<String, String>,
}

/// Creates (`id == None`) or replaces a target.
pub(crate) async fn save_target(id: Option<&str>, form: &TargetForm) -> Result<(), ApiError> {
    let _: serde_json::Value = match id {
        None => send_json("POST", "/api/v1/targets", Some(form)).await?,
        Some(id) => {
            let url = format!("/api/v1/targets/{}", shared::view::encode(id));
            send_json("PUT", &url, Some(form)).await?
        }
    };
    Ok(())
}

/// Deletes a target created through the API.
pub(crate) async fn delete_target(id: &str) -> Result<(), ApiError> {
    let url = format!("/api/v1/targets/{}", shared::view::encode(id));
    let _: serde_json::Value = send_json::<(), _>("DELETE", &url, None).await?;
    Ok(())
}
