//! The application's own health check: an HTTP endpoint the environment names
//! (`[traffic] health_url`), asked once per bake round beside the databases.
//!
//! Guarantees: one `GET` per call, answered within [`APP_HEALTH_LIMIT`] or counted as
//! unanswered. A 2xx answer is healthy; any other status is the application saying it is
//! unhealthy (a permanent failure: the bake fails and the run rolls back); no answer
//! (refused, timed out) is transient, tolerated like an unanswered database round.
//! Caveat: the body is not read; redirects are not followed (a 3xx is unhealthy).

use crate::config::Environment;
use crate::failure::Failure;
use std::time::Duration;

/// How long one health request may take.
pub const APP_HEALTH_LIMIT: Duration = Duration::from_secs(5);

/// `[traffic] health_url`, when the environment names one (checked at load to be an
/// `http://` or `https://` URL).
pub fn health_url(env: &Environment) -> Option<&str> {
    env.traffic.health_url.as_deref()
}

/// One application health endpoint and the HTTP client that asks it (built once, so a
/// long bake reuses its connection pool instead of building a client every round).
pub struct AppHealth {
    client: reqwest::Client,
    url: String,
}

impl AppHealth {
    pub fn new(url: &str) -> Result<Self, Failure> {
        let client = reqwest::Client::builder()
            .timeout(APP_HEALTH_LIMIT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Failure::permanent(format!("cannot build an HTTP client: {e}")))?;
        Ok(AppHealth {
            client,
            url: url.to_owned(),
        })
    }

    /// Asks the endpoint once.
    pub async fn check(&self) -> Result<(), Failure> {
        let url = &self.url;
        match self.client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(Failure::permanent(format!(
                "the application's health check {url} answered {}",
                resp.status()
            ))),
            Err(e) => Err(Failure::transient(format!(
                "the application's health check {url} did not answer: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AppHealth;
    use crate::failure::ErrorClass;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server answering each of `statuses` once, in order.
    async fn server(statuses: &'static [&'static str]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for status in statuses {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let reply =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                conn.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        url
    }

    #[tokio::test]
    async fn a_2xx_is_healthy_another_status_permanent_and_no_answer_transient() {
        let url = server(&["200 OK", "503 Service Unavailable", "302 Found"]).await;
        let health = AppHealth::new(&url).unwrap();
        health.check().await.unwrap();
        let unhealthy = health.check().await.unwrap_err();
        assert_eq!(unhealthy.class, ErrorClass::Permanent);
        assert!(
            unhealthy.message.contains("answered 503"),
            "{}",
            unhealthy.message
        );
        let redirect = health.check().await.unwrap_err();
        assert!(
            redirect.message.contains("answered 302"),
            "{}",
            redirect.message
        );
        // The server has stopped listening: refused, so unanswered.
        let refused = health.check().await.unwrap_err();
        assert_eq!(refused.class, ErrorClass::Transient, "{}", refused.message);
    }
}
