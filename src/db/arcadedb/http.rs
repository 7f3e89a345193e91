//! [`ArcadeHttp`]: one ArcadeDB server's HTTP API as root (readiness, server and
//! database commands, database listing), on loopback, with ArcadeDB's answers
//! classified into failures.

use super::server::{DEFAULT_COMMAND_TIMEOUT, ROOT_USER};
use crate::failure::Failure;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// HTTP access to one server's API as root. Ignores proxy settings (loopback only).
#[derive(Clone, Debug)]
pub struct ArcadeHttp {
    pub(super) port: u16,
    pub(super) password: SecretString,
    client: reqwest::Client,
}

impl ArcadeHttp {
    pub fn new(http_port: u16, root_password: SecretString) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a plain-HTTP reqwest client always builds");
        Self {
            port: http_port,
            password: root_password,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET /api/v1/ready` answered 204 within 2 s.
    pub async fn is_ready(&self) -> bool {
        let response = self
            .client
            .get(self.url("/api/v1/ready"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        matches!(response, Ok(r) if r.status().as_u16() == 204)
    }

    /// `POST /api/v1/server {"command": …}`; returns the `result` field. Errors name the
    /// command's first two words only (commands may carry secrets, e.g. user passwords):
    /// 4xx is permanent (403 = wrong password, 409 = e.g. database already exists),
    /// 5xx and connection failures are transient.
    pub async fn server_command(
        &self,
        command: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, Failure> {
        let body = serde_json::json!({ "command": command });
        self.post("/api/v1/server", &body, command, timeout).await
    }

    /// `POST /api/v1/command/<database>` with a query language (`sql`, `cypher`, …), e.g.
    /// `("ledger", "sql", "BACKUP DATABASE")`; returns the `result` field.
    pub async fn database_command(
        &self,
        database: &str,
        language: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, Failure> {
        self.database_command_with_params(
            database,
            language,
            command,
            serde_json::Value::Null,
            timeout,
        )
        .await
    }

    /// Like [`database_command`](Self::database_command) with named parameters (a JSON
    /// object; `Null` for none), e.g. `("ledger", "cypher", "UNWIND $rows AS r …",
    /// {"rows": […]})`. Without a session the server runs the command in one
    /// transaction of its own. JSON carries no dates: pass them as strings and convert
    /// in the statement (`date(r.day)`); an integral JSON number is stored as an integer,
    /// one with a fraction or exponent (`1.0`) as a double.
    pub async fn database_command_with_params(
        &self,
        database: &str,
        language: &str,
        command: &str,
        params: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, Failure> {
        let mut body = serde_json::json!({ "language": language, "command": command });
        if !params.is_null() {
            body["params"] = params;
        }
        self.post(
            &format!("/api/v1/command/{database}"),
            &body,
            command,
            timeout,
        )
        .await
    }

    /// The databases the server has.
    pub async fn list_databases(&self) -> Result<Vec<String>, Failure> {
        let value = self
            .server_command("list databases", DEFAULT_COMMAND_TIMEOUT)
            .await?;
        serde_json::from_value(value).map_err(|e| {
            Failure::permanent(format!(
                "ArcadeDB on port {}: unexpected `list databases` answer: {e}",
                self.port
            ))
        })
    }

    /// Creates `name` unless it exists; returns whether it created it.
    pub async fn ensure_database(&self, name: &str) -> Result<bool, Failure> {
        if self.list_databases().await?.iter().any(|d| d == name) {
            return Ok(false);
        }
        self.server_command(&format!("create database {name}"), DEFAULT_COMMAND_TIMEOUT)
            .await?;
        Ok(true)
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        command: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, Failure> {
        let what = format!(
            "ArcadeDB on port {}: `{}`",
            self.port,
            command
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let response = self
            .client
            .post(self.url(path))
            .basic_auth(ROOT_USER, Some(self.password.expose_secret()))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Failure::transient(format!("{what}: {}", without_url(&e))))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::transient(format!("{what}: {}", without_url(&e))))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(json.get("result").cloned().unwrap_or(json));
        }
        let detail = error_detail(&json, &text);
        let failure = format!("{what} failed with HTTP {}: {detail}", status.as_u16());
        Err(match status.as_u16() {
            403 | 401 => Failure::permanent(failure)
                .with_hint("check the root password of this ArcadeDB server"),
            500..=599 => Failure::transient(failure),
            _ => Failure::permanent(failure),
        })
    }
}

/// What an ArcadeDB error answer says: its `detail` (or `error`), else the start of the
/// body.
pub(crate) fn error_detail(json: &serde_json::Value, body: &str) -> String {
    json.get("detail")
        .or_else(|| json.get("error"))
        .and_then(|d| d.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// The error and its sources, without the request URL (it may carry a database name the
/// caller already shows, and reads better without it).
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
