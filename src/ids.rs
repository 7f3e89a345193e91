//! Identifier newtypes. Every identifier that crosses a module boundary has its own type
//! so a step id can never be passed where an instance id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string that the caller has already validated.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

id_newtype!(
    /// One execution of a plan. Short, random, safe in file names and S3 keys.
    RunId
);
id_newtype!(
    /// A step's `id` in a runbook; unique within the runbook.
    StepId
);
id_newtype!(
    /// A compute instance (EC2 instance id, or the local provider's instance name).
    InstanceId
);
id_newtype!(
    /// A key in an object store (S3 key, or a relative path in the local store).
    ObjectKey
);
id_newtype!(
    /// The name of a secret in a secret store.
    SecretName
);
id_newtype!(
    /// A logical database of an environment (`ledger`, `search`).
    DatabaseName
);

impl RunId {
    /// A fresh run id: UTC date plus 8 random hex characters, e.g. `20261121-7f3a09bc`.
    /// Sorts by day, short enough to type, unique enough for one environment.
    pub fn generate() -> Self {
        let date = chrono::Utc::now().format("%Y%m%d");
        let suffix: u32 = rand::random();
        Self(format!("{date}-{suffix:08x}"))
    }
}
