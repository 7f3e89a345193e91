//! The AWS rehearsal rig's control API, for tests: which rehearsal host each EC2
//! instance got (its directory and loopback address) and whether the stand-in SSM agent
//! can reach it. Start the rig with [`MotoServer::start_rig`]; everything AWS goes to it
//! exactly as to moto.

use super::moto::MotoServer;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One rehearsal host as the rig reports it (`GET /rig/hosts`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RigHost {
    pub instance_id: String,
    /// 127.0.0.N: where its Neo4j listens on 7687, and the instance's private address.
    pub address: String,
    /// The host's root directory (the AMI's paths under it).
    pub root: PathBuf,
    /// Whether the agent can reach it (the instance runs and the host is not marked down).
    pub up: bool,
    /// Whether its agent has registered with SSM.
    pub registered: bool,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

impl MotoServer {
    /// Every rehearsal host. Panics when this server is not the rig.
    pub async fn rig_hosts(&self) -> Vec<RigHost> {
        assert!(
            self.hosts_dir().is_some(),
            "this server is plain moto, not the rig"
        );
        client()
            .get(format!("{}/rig/hosts", self.endpoint_url()))
            .send()
            .await
            .expect("GET /rig/hosts")
            .json()
            .await
            .expect("the rig's host list")
    }

    /// The host of `instance_id`; panics if it has none.
    pub async fn rig_host(&self, instance_id: &str) -> RigHost {
        self.rig_hosts()
            .await
            .into_iter()
            .find(|h| h.instance_id == instance_id)
            .unwrap_or_else(|| panic!("the rig made no host for {instance_id}"))
    }

    /// The ECS deployments the rig rolled out (`GET /rig/ecs`), oldest first: `service`,
    /// `deployment`, `task_definition`, `started` and `settled` (epoch seconds or null).
    pub async fn rig_ecs_rollouts(&self) -> Vec<serde_json::Value> {
        client()
            .get(format!("{}/rig/ecs", self.endpoint_url()))
            .send()
            .await
            .expect("GET /rig/ecs")
            .json()
            .await
            .expect("the rig's ECS rollouts")
    }

    /// Makes the host of `instance_id` reachable for the agent again (`true`) or not.
    pub async fn set_reachable(&self, instance_id: &str, up: bool) {
        let action = if up { "up" } else { "down" };
        let response = client()
            .post(format!(
                "{}/rig/hosts/{instance_id}/{action}",
                self.endpoint_url()
            ))
            .send()
            .await
            .expect("POST /rig/hosts/…");
        assert!(
            response.status().is_success(),
            "the rig refused to mark {instance_id} {action}: {}",
            response.text().await.unwrap_or_default()
        );
    }
}
