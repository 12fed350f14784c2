//! Targets: deterministic run ids, so a redelivered event never starts a second run.
//!
//! Airflow accepts run ids matching `^[A-Za-z0-9_.~:+-]+$` (its default
//! `allowed_run_id_pattern`) of at most 250 characters, but a run whose id is longer than 248
//! cannot execute: its task log folder `run_id=<id>` would pass the 255-byte file-name limit
//! (`OSError: [Errno 36] File name too long`, measured on Airflow 2.10 to 3.3). So ids stop at
//! 248.

use sha2::{Digest, Sha256};

use crate::event::ObjectEvent;
use crate::template::{hex, is_run_id_char, slug};

/// Longest run id whose runs can execute: `run_id=` plus the id fits a 255-byte file name.
pub const MAX_LEN: usize = 255 - "run_id=".len();
const HASH_LEN: usize = 16;

/// The default run id for an event on a route: route, bucket, key and the object version as
/// the idempotency store names it (version id, else ETag and size, else sequencer), so each
/// version of each object triggers once per route, and a bucket listing (`backfill`, which
/// knows no sequencer) finds the run a live event started.
pub fn default_for(route: &str, event: &ObjectEvent) -> String {
    let version = match (&event.version_id, &event.etag, &event.sequencer) {
        (Some(version), _, _) => version.clone(),
        (None, Some(etag), _) => format!("{etag}-{}", event.size.unwrap_or(0)),
        (None, None, Some(sequencer)) => sequencer.clone(),
        (None, None, None) => String::new(),
    };
    sanitize(&format!(
        "{route}__{}/{}__{version}",
        event.bucket, event.key
    ))
}

/// Makes `raw` a valid run id without ever mapping two different inputs to one output:
/// a valid id of at most [`MAX_LEN`] (248) characters is kept as is; anything else becomes its slug, cut to
/// fit, followed by `~` and 16 hex digits of the SHA-256 of the original.
pub fn sanitize(raw: &str) -> String {
    if !raw.is_empty() && raw.len() <= MAX_LEN && raw.chars().all(is_run_id_char) {
        return raw.to_owned();
    }
    let digest = hex(&Sha256::digest(raw.as_bytes()));
    let mut readable = slug(raw);
    readable.truncate(MAX_LEN - HASH_LEN - 1);
    format!("{readable}~{}", &digest[..HASH_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(id: &str) -> bool {
        !id.is_empty() && id.len() <= MAX_LEN && id.chars().all(is_run_id_char)
    }

    #[test]
    fn the_default_names_the_version_as_the_store_does() {
        let mut event = ObjectEvent {
            etag: Some("0123abcd".into()),
            size: Some(52),
            sequencer: Some("0062E9".into()),
            ..ObjectEvent::put("b", "in/k.csv")
        };
        let live = default_for("r", &event);
        assert!(live.starts_with("r__b-in-k.csv__0123abcd-52~"), "{live}");
        // A listing has no sequencer: same id, so Airflow answers 409 instead of a second run.
        event.sequencer = None;
        assert_eq!(default_for("r", &event), live);
        event.version_id = Some("v7".into());
        assert!(
            default_for("r", &event).contains("__v7"),
            "{}",
            default_for("r", &event)
        );
        event.version_id = None;
        event.etag = None;
        event.sequencer = Some("0062E9".into());
        assert!(default_for("r", &event).contains("0062E9"));
    }

    #[test]
    fn valid_ids_are_kept() {
        assert_eq!(
            sanitize("s3__bucket__key.csv__0A1B"),
            "s3__bucket__key.csv__0A1B"
        );
    }

    #[test]
    fn invalid_ids_are_valid_after_and_do_not_collide() {
        let a = sanitize("r__b/dir/a b.csv__1");
        let b = sanitize("r__b/dir/a-b.csv__1");
        let c = sanitize("r__b/dir/a_b.csv__1");
        assert!(valid(&a) && valid(&b) && valid(&c), "{a} {b} {c}");
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert!(a.starts_with("r__b-dir-a-b.csv__1~"), "{a}");
        assert_eq!(a, sanitize("r__b/dir/a b.csv__1"), "deterministic");
    }

    #[test]
    fn long_and_unicode_ids_fit() {
        let long = format!("r__b/{}__1", "日本/".repeat(200));
        let id = sanitize(&long);
        assert!(valid(&id), "{id}");
        assert_eq!(id.len(), MAX_LEN.min(id.len()));
        let longer = format!("{long}x");
        assert_ne!(sanitize(&longer), id, "tails differ, so hashes differ");
        let ascii = "x".repeat(400);
        assert_eq!(sanitize(&ascii).len(), MAX_LEN);
        assert_eq!(MAX_LEN, 248);
        // 249 and 250 characters are valid for Airflow's API but their runs cannot execute.
        let id = "x".repeat(249);
        assert_ne!(sanitize(&id), id);
        assert_eq!(sanitize(&id).len(), MAX_LEN);
        assert_eq!(sanitize(&"x".repeat(248)), "x".repeat(248));
        assert_eq!(
            sanitize(""),
            format!("~{}", &hex(&Sha256::digest(b""))[..16])
        );
    }
}
