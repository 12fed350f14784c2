//! Routing: which routes an event matches. Pure; no I/O.

use serde::Deserialize;

use crate::event::ObjectEvent;
use crate::glob::{Glob, GlobError};

/// The S3 event names a notification can carry (and EventBridge reasons and Cloud Storage
/// event types map to), by family. A route's `event:` is `*`, a family with `:*`, or one of
/// these (or a Cloud Storage name: `OBJECT_FINALIZE`, ...).
const EVENT_NAMES: &[&str] = &[
    "ObjectCreated:Put",
    "ObjectCreated:Finalize",
    "ObjectRemoved:Archive",
    "ObjectMetadata:Update",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "ObjectRestore:Post",
    "ObjectRestore:Completed",
    "ObjectRestore:Delete",
    "ReducedRedundancyLostObject",
    "Replication:OperationFailedReplication",
    "Replication:OperationMissedThreshold",
    "Replication:OperationReplicatedAfterThreshold",
    "Replication:OperationNotTracked",
    "LifecycleExpiration:Delete",
    "LifecycleExpiration:DeleteMarkerCreated",
    "LifecycleTransition",
    "IntelligentTiering",
    "ObjectTagging:Put",
    "ObjectTagging:Delete",
    "ObjectAcl:Put",
];

/// Why a `match:` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// The glob does not compile.
    #[error(transparent)]
    Glob(#[from] GlobError),
    /// An `event:` pattern no event can match: the route would never fire.
    #[error("{pattern:?} is no S3 event name{hint}")]
    Event {
        /// The pattern as written.
        pattern: String,
        /// `; did you mean "..."?`, when one is close.
        hint: String,
    },
}

impl MatchError {
    /// The field of `match:` at fault.
    pub fn field(&self) -> &'static str {
        match self {
            MatchError::Glob(_) => "glob",
            MatchError::Event { .. } => "event",
        }
    }
}

/// Checks an `event:` pattern (without its `s3:` prefix) against [`EVENT_NAMES`].
fn check_event(pattern: &str) -> Result<(), MatchError> {
    let known = |pattern: &str| {
        pattern == "*"
            || EVENT_NAMES.contains(&pattern)
            || pattern.strip_suffix(":*").is_some_and(|family| {
                EVENT_NAMES
                    .iter()
                    .any(|name| name.split_once(':').is_some_and(|(f, _)| f == family))
            })
    };
    if known(pattern) {
        return Ok(());
    }
    let candidates = EVENT_NAMES.iter().map(|name| name.to_string()).chain(
        EVENT_NAMES
            .iter()
            .filter_map(|name| name.split_once(':'))
            .map(|(family, _)| format!("{family}:*")),
    );
    let nearest = candidates
        .map(|candidate| (edit_distance(pattern, &candidate), candidate))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 3);
    Err(MatchError::Event {
        pattern: pattern.to_owned(),
        hint: match nearest {
            Some((_, name)) => format!("; did you mean {name:?}?"),
            None => "; e.g. \"ObjectCreated:*\", \"ObjectCreated:Put\", \"*\"".to_owned(),
        },
    })
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// One value or a list of them (`bucket: a` or `bucket: [a, b]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values; any may match.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

/// `match:` in a route. Every condition given must hold; an absent or empty one always holds.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Bucket name(s).
    pub bucket: Option<OneOrMany>,
    /// Key prefix.
    pub prefix: Option<String>,
    /// Key suffix.
    pub suffix: Option<String>,
    /// Key glob (`*`, `**`, `?`, `[...]`).
    pub glob: Option<String>,
    /// Event name pattern(s), S3 style: `ObjectCreated:*` (the default), `ObjectCreated:Put`.
    /// A leading `s3:` is accepted, as in S3 notification configurations.
    pub event: Option<OneOrMany>,
}

/// A compiled `match:`.
#[derive(Debug, Clone)]
pub struct Matcher {
    buckets: Vec<String>,
    prefix: String,
    suffix: String,
    glob: Option<Glob>,
    events: Vec<String>,
}

impl Matcher {
    /// Compiles a match configuration.
    pub fn new(config: &MatchConfig) -> Result<Self, MatchError> {
        let events: Vec<String> = config
            .event
            .clone()
            .map(OneOrMany::into_vec)
            .unwrap_or_else(|| vec!["ObjectCreated:*".to_owned()])
            .into_iter()
            .map(|pattern| {
                let pattern = pattern.strip_prefix("s3:").unwrap_or(&pattern);
                // Cloud Storage's names (`OBJECT_FINALIZE`, or a CloudEvent type) for its events.
                let gcs = pattern
                    .strip_prefix("google.cloud.storage.object.v1.")
                    .unwrap_or(pattern);
                crate::event::gcs_event_name(gcs)
                    .unwrap_or(pattern)
                    .to_owned()
            })
            .collect();
        for pattern in &events {
            check_event(pattern)?;
        }
        Ok(Matcher {
            buckets: config
                .bucket
                .clone()
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
                .into_iter()
                .filter(|bucket| !bucket.is_empty())
                .collect(),
            prefix: config.prefix.clone().unwrap_or_default(),
            suffix: config.suffix.clone().unwrap_or_default(),
            glob: config.glob.as_deref().map(Glob::new).transpose()?,
            events,
        })
    }

    /// Whether `event` satisfies every condition.
    pub fn matches(&self, event: &ObjectEvent) -> bool {
        (self.buckets.is_empty() || self.buckets.contains(&event.bucket))
            && event.key.starts_with(&self.prefix)
            && event.key.ends_with(&self.suffix)
            && self
                .glob
                .as_ref()
                .is_none_or(|glob| glob.is_match(&event.key))
            && self
                .events
                .iter()
                .any(|pattern| event_matches(pattern, &event.event_name))
    }

    /// A one-line description for `validate`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.buckets.is_empty() {
            parts.push(format!("bucket {}", self.buckets.join(" | ")));
        }
        if !self.prefix.is_empty() {
            parts.push(format!("prefix {:?}", self.prefix));
        }
        if !self.suffix.is_empty() {
            parts.push(format!("suffix {:?}", self.suffix));
        }
        if let Some(glob) = &self.glob {
            parts.push(format!("glob {:?}", glob.as_str()));
        }
        parts.push(format!("event {}", self.events.join(" | ")));
        parts.join(", ")
    }
}

/// `ObjectCreated:*` matches `ObjectCreated:Put`; `*` alone matches everything; otherwise equal.
fn event_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;

    #[test]
    fn event_patterns_must_name_s3_events() {
        for good in [
            "*",
            "ObjectCreated:*",
            "s3:ObjectCreated:Put",
            "ObjectRemoved:*",
            "LifecycleTransition",
        ] {
            let config = MatchConfig {
                event: Some(OneOrMany::One(good.into())),
                ..MatchConfig::default()
            };
            assert!(Matcher::new(&config).is_ok(), "{good}");
        }
        for (bad, want) in [
            (
                "ObjectCreate:*",
                "\"ObjectCreate:*\" is no S3 event name; did you mean \"ObjectCreated:*\"?",
            ),
            ("ObjectCreated:put", "did you mean \"ObjectCreated:Put\"?"),
            ("created", "is no S3 event name; e.g. \"ObjectCreated:*\""),
            (
                "LifecycleTransition:*",
                "did you mean \"LifecycleTransition\"?",
            ),
        ] {
            let config = MatchConfig {
                event: Some(OneOrMany::Many(vec!["ObjectCreated:*".into(), bad.into()])),
                ..MatchConfig::default()
            };
            let err = Matcher::new(&config).unwrap_err();
            assert_eq!(err.field(), "event");
            assert!(err.to_string().contains(want), "{bad}: {err}");
        }
    }

    fn event(bucket: &str, key: &str, name: &str) -> ObjectEvent {
        ObjectEvent {
            source: Source::S3,
            bucket: bucket.into(),
            key: key.into(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_name: name.into(),
            event_time: None,
            region: None,
            record_id: None,
        }
    }

    fn matcher(yaml: &str) -> Matcher {
        Matcher::new(&serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn every_condition_must_hold() {
        let m = matcher("{ bucket: [a, b], prefix: in/, suffix: .csv, glob: 'in/**/x-*.csv' }");
        assert!(m.matches(&event("a", "in/2026/x-1.csv", "ObjectCreated:Put")));
        assert!(m.matches(&event(
            "b",
            "in/x-1.csv",
            "ObjectCreated:CompleteMultipartUpload"
        )));
        assert!(
            !m.matches(&event("c", "in/x-1.csv", "ObjectCreated:Put")),
            "bucket"
        );
        assert!(
            !m.matches(&event("a", "out/x-1.csv", "ObjectCreated:Put")),
            "prefix"
        );
        assert!(
            !m.matches(&event("a", "in/x-1.json", "ObjectCreated:Put")),
            "suffix"
        );
        assert!(
            !m.matches(&event("a", "in/y-1.csv", "ObjectCreated:Put")),
            "glob"
        );
        assert!(
            !m.matches(&event("a", "in/x-1.csv", "ObjectRemoved:Delete")),
            "default event filter"
        );
    }

    #[test]
    fn empty_conditions_hold_and_event_patterns() {
        let m = matcher("{ bucket: '', prefix: '', suffix: '' }");
        assert!(m.matches(&event("any", "key", "ObjectCreated:Copy")));
        let m = matcher("{ event: 's3:ObjectCreated:Put' }");
        assert!(m.matches(&event("b", "k", "ObjectCreated:Put")));
        assert!(!m.matches(&event("b", "k", "ObjectCreated:Copy")));
        let m = matcher("{ event: '*' }");
        assert!(m.matches(&event("b", "k", "ObjectRemoved:Delete")));
    }
}
