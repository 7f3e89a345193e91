//! The environment lease on S3: one run per environment at a time.
//!
//! The lease is one JSON object (`lease.json` under the environment's prefix) written with
//! a conditional put: `If-None-Match: *` to acquire (exactly one of several racers
//! succeeds; the others get HTTP 412 and read who holds it), `If-Match: <etag>` to renew,
//! release and take over, so a lease changed by someone else is never overwritten
//! blindly. An expired lease is *shown* with its holder; taking it over is an explicit
//! call naming the holder the caller expects to replace.

use super::config::AwsSettings;
use super::errors::{classify, error_code, Effect};
use crate::failure::Failure;
use crate::ids::RunId;
pub use crate::providers::lease::LeaseInfo;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use chrono::Utc;
use std::time::Duration;

/// A lease this process holds: the info and the object's ETag (for conditional writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLease {
    pub info: LeaseInfo,
    pub etag: String,
}

/// The outcome of an acquisition attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    Acquired(HeldLease),
    /// Someone else holds it. `expired` says whether its holder stopped renewing.
    HeldBy {
        holder: HeldLease,
        expired: bool,
    },
}

/// The S3 lease of one environment.
#[derive(Clone, Debug)]
pub struct S3Lease {
    client: aws_sdk_s3::Client,
    settings: AwsSettings,
    key: String,
}

fn ttl_delta(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(24))
}

impl S3Lease {
    pub fn new(client: aws_sdk_s3::Client, settings: AwsSettings) -> Self {
        let key = settings.full_key("lease.json");
        Self {
            client,
            settings,
            key,
        }
    }

    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.key)
    }

    fn new_info(owner: &str, run_id: &RunId, ttl: Duration) -> LeaseInfo {
        LeaseInfo::new(owner, run_id, ttl)
    }

    /// Writes `info` conditionally: `if_none_match` for a fresh lease, else `If-Match`.
    /// `Ok(None)` when the condition failed (someone else changed the lease).
    async fn write(
        &self,
        info: &LeaseInfo,
        if_match: Option<&str>,
    ) -> Result<Option<String>, Failure> {
        let body = serde_json::to_vec_pretty(info)
            .map_err(|e| Failure::permanent(format!("encoding the lease: {e}")))?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.settings.bucket)
            .key(&self.key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match &self.settings.kms_key_id {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        req = match if_match {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_owned())),
            Err(e)
                if error_code(&e) == Some("PreconditionFailed")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                Ok(None)
            }
            // NoSuchKey on If-Match: the lease was released meanwhile.
            Err(e) if if_match.is_some() && error_code(&e) == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(classify(
                &format!("PutObject {}", self.location()),
                Effect::Write,
                &e,
            )),
        }
    }

    /// The current lease and its ETag, if any.
    pub async fn current(&self) -> Result<Option<HeldLease>, Failure> {
        match self
            .client
            .get_object()
            .bucket(&self.settings.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_owned();
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Failure::transient(format!("reading {}: {e}", self.location())))?
                    .into_bytes();
                let info: LeaseInfo = serde_json::from_slice(&bytes).map_err(|e| {
                    Failure::permanent(format!("{} is not a cutover lease: {e}", self.location()))
                        .with_hint("inspect the object; remove it only if no run is in progress")
                })?;
                Ok(Some(HeldLease { info, etag }))
            }
            Err(e) if error_code(&e) == Some("NoSuchKey") => Ok(None),
            Err(e) => Err(classify(
                &format!("GetObject {}", self.location()),
                Effect::Read,
                &e,
            )),
        }
    }

    /// Tries to take the free lease; otherwise reports the holder (even when that is
    /// the same run: whether a stale lease may be taken over is the caller's decision,
    /// made explicit with [`S3Lease::take_over`]).
    pub async fn acquire(
        &self,
        owner: &str,
        run_id: &RunId,
        ttl: Duration,
    ) -> Result<LeaseOutcome, Failure> {
        let info = Self::new_info(owner, run_id, ttl);
        if let Some(etag) = self.write(&info, None).await? {
            return Ok(LeaseOutcome::Acquired(HeldLease { info, etag }));
        }
        let Some(holder) = self.current().await? else {
            // Released between our put and our read: the caller may simply try again.
            return Err(Failure::transient(format!(
                "the lease at {} changed while acquiring it",
                self.location()
            )));
        };
        let expired = holder.info.is_expired(Utc::now());
        Ok(LeaseOutcome::HeldBy { holder, expired })
    }

    /// Extends a held lease. Losing it (someone took it over) is permanent: stop the run.
    pub async fn renew(&self, held: &HeldLease, ttl: Duration) -> Result<HeldLease, Failure> {
        let mut info = held.info.clone();
        info.expires_at = Utc::now() + ttl_delta(ttl);
        match self.write(&info, Some(&held.etag)).await? {
            Some(etag) => Ok(HeldLease { info, etag }),
            None => Err(Failure::permanent(format!(
                "lost the lease at {}: it was taken over or released by someone else",
                self.location()
            ))
            .with_hint("stop; see who holds it with `cutover status`")),
        }
    }

    /// Releases a held lease; idempotent. Never deletes a lease someone else now holds.
    pub async fn release(&self, held: &HeldLease) -> Result<(), Failure> {
        let Some(current) = self.current().await? else {
            return Ok(());
        };
        if current.info.lease_id != held.info.lease_id {
            return Ok(());
        }
        match self
            .client
            .delete_object()
            .bucket(&self.settings.bucket)
            .key(&self.key)
            .if_match(&current.etag)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if error_code(&e) == Some("PreconditionFailed")
                    || error_code(&e) == Some("NoSuchKey") =>
            {
                Ok(())
            }
            Err(e) => Err(classify(
                &format!("DeleteObject {}", self.location()),
                Effect::Write,
                &e,
            )),
        }
    }

    /// Explicitly takes the lease over from `expected` (as shown to the operator). Fails
    /// with the new holder if the lease changed since it was shown.
    pub async fn take_over(
        &self,
        expected: &HeldLease,
        owner: &str,
        run_id: &RunId,
        ttl: Duration,
    ) -> Result<LeaseOutcome, Failure> {
        let mut info = Self::new_info(owner, run_id, ttl);
        info.taken_over_from = Some(Box::new(LeaseInfo {
            taken_over_from: None,
            ..expected.info.clone()
        }));
        if let Some(etag) = self.write(&info, Some(&expected.etag)).await? {
            tracing::warn!(previous_owner = %expected.info.owner, previous_run = %expected.info.run_id, "lease taken over");
            return Ok(LeaseOutcome::Acquired(HeldLease { info, etag }));
        }
        match self.current().await? {
            Some(holder) => {
                let expired = holder.info.is_expired(Utc::now());
                Ok(LeaseOutcome::HeldBy { holder, expired })
            }
            None => Err(Failure::transient(format!(
                "the lease at {} was released meanwhile; acquire it normally",
                self.location()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive_and_takeover_keeps_history_flat() {
        let info = S3Lease::new_info("ci@runner", &RunId::new("r1"), Duration::from_secs(60));
        assert!(!info.is_expired(info.acquired_at));
        assert!(info.is_expired(info.expires_at));
        let json = serde_json::to_string(&info).unwrap();
        assert!(!json.contains("taken_over_from"));
    }
}
