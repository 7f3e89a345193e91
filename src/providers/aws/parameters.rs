//! SSM Parameter Store: the environment's current AMI id per database, release markers,
//! and AWS's public base-AMI parameters (e.g.
//! `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`).

use super::errors::{classify, error_code, Effect};
use crate::failure::Failure;
use aws_sdk_ssm::types::ParameterType;

/// Parameters under `/cutover/<env>/…`.
#[derive(Clone, Debug)]
pub struct ParameterStore {
    client: aws_sdk_ssm::Client,
    env: String,
}

impl ParameterStore {
    pub fn new(client: aws_sdk_ssm::Client, env: impl Into<String>) -> Self {
        Self {
            client,
            env: env.into(),
        }
    }

    /// `/cutover/<env>/<database>/ami-id`.
    pub fn ami_parameter(&self, database: &str) -> String {
        format!("/cutover/{}/{database}/ami-id", self.env)
    }

    /// `/cutover/<env>/image/<edition>`: the newest image `ami.build` baked for an edition.
    pub fn image_parameter(&self, edition: &str) -> String {
        format!("/cutover/{}/image/{edition}", self.env)
    }

    /// `/cutover/<env>/release/<name>`.
    pub fn release_parameter(&self, name: &str) -> String {
        format!("/cutover/{}/release/{name}", self.env)
    }

    /// Any parameter's value; `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<String>, Failure> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(str::to_owned)),
            Err(e) if error_code(&e) == Some("ParameterNotFound") => Ok(None),
            Err(e) => Err(classify(&format!("GetParameter {name}"), Effect::Read, &e)),
        }
    }

    /// Writes a plain String parameter (overwriting). Returns the new parameter version.
    pub async fn put(&self, name: &str, value: &str) -> Result<i64, Failure> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| classify(&format!("PutParameter {name}"), Effect::Write, &e))?;
        Ok(out.version())
    }

    /// Deletes a parameter. Idempotent: a missing parameter is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), Failure> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("ParameterNotFound") => Ok(()),
            Err(e) => Err(classify(
                &format!("DeleteParameter {name}"),
                Effect::Write,
                &e,
            )),
        }
    }

    pub async fn current_ami(&self, database: &str) -> Result<Option<String>, Failure> {
        self.get(&self.ami_parameter(database)).await
    }

    pub async fn set_current_ami(&self, database: &str, ami_id: &str) -> Result<i64, Failure> {
        if !ami_id.starts_with("ami-") {
            return Err(Failure::permanent(format!("{ami_id:?} is not an AMI id")));
        }
        self.put(&self.ami_parameter(database), ami_id).await
    }

    pub async fn release_marker(&self, name: &str) -> Result<Option<String>, Failure> {
        self.get(&self.release_parameter(name)).await
    }

    pub async fn set_release_marker(&self, name: &str, value: &str) -> Result<i64, Failure> {
        self.put(&self.release_parameter(name), value).await
    }

    /// A public AWS parameter such as the latest Amazon Linux AMI. Missing is permanent:
    /// the name is wrong or the region does not publish it.
    pub async fn public_base_ami(&self, parameter: &str) -> Result<String, Failure> {
        self.get(parameter).await?.ok_or_else(|| {
            Failure::permanent(format!(
                "public parameter {parameter} does not exist in this region"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameter_names_are_namespaced_by_env() {
        let conf = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .build();
        let p = super::ParameterStore::new(aws_sdk_ssm::Client::from_conf(conf), "production");
        assert_eq!(
            p.ami_parameter("ledger"),
            "/cutover/production/ledger/ami-id"
        );
        assert_eq!(
            p.release_parameter("last-good"),
            "/cutover/production/release/last-good"
        );
    }
}
