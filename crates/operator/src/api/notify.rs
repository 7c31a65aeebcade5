//! Notifications of a run's outcome (`spec.notify`) and what became of each
//! (`status.notifications`). Plain types: a target names its kind by the one
//! field it sets, and the controller checks that exactly one is set.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::LayerPhase;

/// Most targets one run notifies.
pub const MAX_NOTIFY_TARGETS: usize = 10;

/// One place a run's outcome is told, and when. Exactly one of `webhook`,
/// `slack` and `githubStatus` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyTarget {
    /// When to notify: `Always`, `OnFailure` (the outcome is not
    /// Succeeded) or `OnChange` (the outcome differs from the previous
    /// run's of the same schedule, or else of the same layer in the
    /// namespace); `OnFailure` when unset.
    #[serde(default)]
    pub when: NotifyWhen,
    /// POST a JSON document (docs/reference/notification.schema.json) to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// POST a message to a Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackTarget>,
    /// Set a GitHub commit status on the run's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_status: Option<GithubStatusTarget>,
}

/// When a target is notified.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NotifyWhen {
    /// After every run.
    Always,
    /// After a run that did not succeed (Failed, TimedOut or Cancelled).
    #[default]
    OnFailure,
    /// After a run whose outcome differs from the previous run's (a first
    /// run counts as a change).
    OnChange,
}

// Read as a string first, so that a wrong value is told in words (a
// template's spec is read from a JSON value, where serde's own words for an
// enum name its representation).
impl<'de> Deserialize<'de> for NotifyWhen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "Always" => Ok(NotifyWhen::Always),
            "OnFailure" => Ok(NotifyWhen::OnFailure),
            "OnChange" => Ok(NotifyWhen::OnChange),
            other => Err(serde::de::Error::custom(format!(
                "unknown value {other:?}; use Always, OnFailure or OnChange"
            ))),
        }
    }
}

impl NotifyWhen {
    /// The word of the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyWhen::Always => "Always",
            NotifyWhen::OnFailure => "OnFailure",
            NotifyWhen::OnChange => "OnChange",
        }
    }
}

/// A generic webhook: exactly one of `url` and `urlFrom`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTarget {
    /// The URL (`http://` or `https://`); one with a token in it belongs
    /// in a Secret (`urlFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A key of a Secret in the run's namespace holding the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from: Option<SecretKeyRef>,
    /// A key of a Secret holding the key of an HMAC-SHA256 signature of the
    /// body, sent as `X-Testlayer-Signature-256: sha256=<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// A Slack incoming webhook.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackTarget {
    /// A key of a Secret in the run's namespace holding the webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_from: Option<SecretKeyRef>,
}

/// A GitHub commit status ("Create a commit status").
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubStatusTarget {
    /// The repository, `owner/name`.
    pub repository: String,
    /// A key of a Secret in the run's namespace holding a token that may
    /// write commit statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_from: Option<SecretKeyRef>,
    /// The API's root; `https://api.github.com` when unset (GitHub
    /// Enterprise: `https://HOST/api/v3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The status's context; `testlayer/<layer>` when unset
    /// (`testlayer/<schedule or trigger>` for a suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The commit; the run's annotation `testlayer.dev/revision` (set by
    /// triggers) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// The status's link (e.g. a dashboard of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// A key of a Secret in the run's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its `data`.
    pub key: String,
}

/// What became of one notification of a run's outcome. Recorded before it
/// is sent, so that it is sent at most once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The target's index in `spec.notify`.
    #[schemars(range(max = 9))]
    pub target: u32,
    /// `webhook`, `slack` or `githubStatus`.
    pub kind: String,
    /// The outcome told: the run's phase, or its suite's.
    pub outcome: LayerPhase,
    /// Pending (recorded, not sent yet), Sending (an attempt was started),
    /// Sent, Failed or Skipped (its `when` did not match).
    pub state: NotificationState,
    /// Attempts started.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// The HTTP status of the last answer, if one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    /// Why the last attempt failed, or why none could be made (never a
    /// secret: URLs are shown as `scheme://host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// The state of one notification.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NotificationState {
    /// Recorded; no attempt started.
    Pending,
    /// An attempt was started. One found so by a controller that did not
    /// start it (a restart) is never sent again: it ends Failed.
    Sending,
    /// The receiver answered 2xx.
    Sent,
    /// Given up: a 4xx, attempts used up, no revision, a missing Secret,
    /// or a restart while sending.
    Failed,
    /// Not sent: the target's `when` did not match the outcome.
    Skipped,
}

impl NotificationState {
    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            NotificationState::Pending | NotificationState::Sending
        )
    }

    /// The word of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "Pending",
            NotificationState::Sending => "Sending",
            NotificationState::Sent => "Sent",
            NotificationState::Failed => "Failed",
            NotificationState::Skipped => "Skipped",
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
