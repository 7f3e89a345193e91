//! Turning AWS SDK errors into classified [`Failure`]s.
//!
//! Throttling, 5xx, timeouts and connection errors are transient; validation, other 4xx
//! and not-found are permanent; a response that could not be read after a request that
//! may have changed the world is inconclusive.

use crate::failure::Failure;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes AWS services use for "slow down" or "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "ConditionalRequestConflict",
    "OperationAborted",
    "InsufficientInstanceCapacity",
];

/// Whether a request changed nothing (a read) or may have changed the world (a write).
/// An unreadable response to a write is inconclusive: it may have happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Read,
    Write,
}

/// The service error code, when the error came from the service.
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

/// HTTP status of the response, when there was one.
pub fn http_status<E>(err: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Classifies an SDK error. `what` names the operation and the resource, e.g.
/// `"RunInstances for ledger-green"`; it starts the failure message.
pub fn classify<E>(
    what: &str,
    effect: Effect,
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ConstructionFailure(_) => Failure::permanent(format!(
            "{what}: the request could not be built: {}",
            source_text(err)
        )),
        SdkError::TimeoutError(_) => match effect {
            Effect::Read => Failure::transient(format!("{what}: timed out")),
            Effect::Write => Failure::inconclusive(format!(
                "{what}: timed out; the change may or may not have happened"
            ))
            .with_hint("resume: cutover observes the resource before trying again"),
        },
        SdkError::DispatchFailure(d) => {
            let text = source_text(err);
            if text.to_lowercase().contains("credential") {
                Failure::permanent(format!("{what}: no usable AWS credentials: {text}"))
                    .with_hint("set AWS_PROFILE or the environment's aws.profile, or run on a machine with an instance role")
            } else if d.is_user() {
                Failure::permanent(format!("{what}: {text}"))
            } else {
                // The request never reached the service (connect failure, DNS, reset before send).
                Failure::transient(format!("{what}: could not reach AWS: {text}"))
            }
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            if status >= 500 || effect == Effect::Read {
                Failure::transient(format!("{what}: unreadable response (HTTP {status})"))
            } else {
                Failure::inconclusive(format!(
                    "{what}: unreadable response (HTTP {status}); the change may have happened"
                ))
            }
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let e = ctx.err();
            // A HEAD response has no body, so S3's 403 for a missing permission comes
            // without a code: name it for what it is.
            let code = e.code().unwrap_or(if status == 403 {
                "AccessDenied"
            } else {
                "Unknown"
            });
            let message = e.message().unwrap_or("");
            let request_id = ctx
                .raw()
                .headers()
                .get("x-amzn-requestid")
                .or_else(|| ctx.raw().headers().get("x-amz-request-id"))
                .unwrap_or("-");
            let text = format!("{what}: {code} (HTTP {status}): {message} [request {request_id}]");
            if TRANSIENT_CODES.contains(&code) || status >= 500 || status == 429 {
                Failure::transient(text)
            } else {
                let f = Failure::permanent(text);
                match code {
                    "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
                        f.with_hint("the AWS identity lacks a permission: `cutover iam RUNBOOK --env ENV` prints the policy this run needs (docs/iam.md)")
                    }
                    "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
                        f.with_hint("the AWS session expired; refresh credentials (aws sso login) and resume")
                    }
                    _ => f,
                }
            }
        }
        _ => Failure::transient(format!("{what}: {}", source_text(err))),
    }
}

/// The whole error chain as one line.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_include_the_common_throttles() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "SlowDown",
            "TooManyRequestsException",
        ] {
            assert!(TRANSIENT_CODES.contains(&code), "{code}");
        }
    }
}
