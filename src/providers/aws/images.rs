//! EC2 images (AMIs) cutover bakes: `CreateImage` from a stopped builder, describe by id
//! or by name, tag the image and its snapshots, deregister (with its snapshots).
//!
//! `CreateImage` takes no client token, but an image name is unique per account and
//! region: a second call with the same name fails with `InvalidAMIName.Duplicate`, and
//! [`Ec2Images::create_from_instance`] then adopts the image that has the name. cutover
//! names images after their bake key, so the same recipe never makes two images.

use super::errors::{classify, error_code, Effect};
use crate::failure::Failure;
use crate::ids::InstanceId;
use crate::providers::Tags;
use aws_sdk_ec2::types::{Filter, ImageState as Ec2ImageState, Tag};

/// Tag keys of baked images (and their snapshots).
pub mod image_tag {
    /// SHA-256 of the recipe and edition.
    pub const BAKE_KEY: &str = "cutover:bake-key";
    /// The base AMI the builder started from.
    pub const SOURCE_AMI: &str = "cutover:source-ami";
    pub const EDITION: &str = "cutover:neo4j-edition";
    pub const VERSION: &str = "cutover:neo4j-version";
    /// The git commit of the recipe.
    pub const RECIPE_COMMIT: &str = "cutover:recipe-commit";
    /// `builder` on builder instances; `image` on images.
    pub const ROLE: &str = "cutover:role";
}

/// Where an image is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageState {
    Pending,
    Available,
    /// `failed`, `invalid` or `error`: it will never become available.
    Failed(String),
    /// `deregistered`, `disabled`, … — not usable, not ours to wait for.
    Other(String),
}

/// An image as EC2 describes it.
#[derive(Clone, Debug)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub state: ImageState,
    pub tags: Tags,
    pub snapshot_ids: Vec<String>,
    pub creation_date: Option<String>,
    /// EC2's reason when the state is failed.
    pub state_reason: Option<String>,
}

/// Images owned by this account.
#[derive(Clone, Debug)]
pub struct Ec2Images {
    ec2: aws_sdk_ec2::Client,
}

impl Ec2Images {
    pub fn new(ec2: aws_sdk_ec2::Client) -> Self {
        Self { ec2 }
    }

    /// `None` when the image does not exist (or was deregistered long ago).
    pub async fn describe(&self, id: &str) -> Result<Option<Image>, Failure> {
        match self.ec2.describe_images().image_ids(id).send().await {
            Ok(out) => Ok(out.images().first().map(to_image)),
            Err(e) if is_not_found(error_code(&e)) => Ok(None),
            Err(e) => Err(classify(&format!("DescribeImages {id}"), Effect::Read, &e)),
        }
    }

    /// This account's images matching every filter (`name`, `tag:KEY`), newest first.
    async fn find(&self, filters: Vec<Filter>) -> Result<Vec<Image>, Failure> {
        let out = self
            .ec2
            .describe_images()
            .owners("self")
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| classify("DescribeImages", Effect::Read, &e))?;
        let mut images: Vec<Image> = out.images().iter().map(to_image).collect();
        images.sort_by(|a, b| b.creation_date.cmp(&a.creation_date).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// The image called `name`, if this account has one.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Image>, Failure> {
        let filter = Filter::builder().name("name").values(name).build();
        Ok(self.find(vec![filter]).await?.into_iter().next())
    }

    /// This account's images carrying every tag, newest first.
    pub async fn find_by_tags(&self, tags: &Tags) -> Result<Vec<Image>, Failure> {
        let filters = tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        self.find(filters).await
    }

    /// Starts an image of `instance` (which should be stopped), or adopts the image that
    /// already has `name`. Returns the image id; the image is usually still pending.
    pub async fn create_from_instance(
        &self,
        instance: &InstanceId,
        name: &str,
        description: &str,
    ) -> Result<String, Failure> {
        let sent = self
            .ec2
            .create_image()
            .instance_id(instance.as_str())
            .name(name)
            .description(description)
            .send()
            .await;
        match sent {
            Ok(out) => out.image_id().map(str::to_owned).ok_or_else(|| {
                Failure::inconclusive(format!("CreateImage {name} returned no image id"))
            }),
            Err(e) if error_code(&e) == Some("InvalidAMIName.Duplicate") => {
                match self.find_by_name(name).await? {
                    Some(image) => {
                        tracing::info!(image_id = %image.id, name, "adopting the image an earlier attempt created");
                        Ok(image.id)
                    }
                    None => Err(Failure::transient(format!(
                        "CreateImage {name}: the name is taken but no image of this account has it yet"
                    ))),
                }
            }
            Err(e) => Err(classify(
                &format!("CreateImage {name} from {instance}"),
                Effect::Write,
                &e,
            )),
        }
    }

    /// Adds (or overwrites) tags on images and snapshots. Idempotent.
    pub async fn tag(&self, resources: &[String], tags: &Tags) -> Result<(), Failure> {
        if resources.is_empty() || tags.is_empty() {
            return Ok(());
        }
        let ec2_tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.ec2
            .create_tags()
            .set_resources(Some(resources.to_vec()))
            .set_tags(Some(ec2_tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateTags {resources:?}"), Effect::Write, &e))?;
        Ok(())
    }

    /// Deregisters the image and deletes its snapshots. Idempotent: a missing image or
    /// snapshot is not an error.
    pub async fn deregister(&self, image: &Image) -> Result<(), Failure> {
        match self.ec2.deregister_image().image_id(&image.id).send().await {
            Ok(_) => {}
            Err(e) if is_not_found(error_code(&e)) => {}
            Err(e) => {
                return Err(classify(
                    &format!("DeregisterImage {}", image.id),
                    Effect::Write,
                    &e,
                ))
            }
        }
        for snapshot in &image.snapshot_ids {
            match self
                .ec2
                .delete_snapshot()
                .snapshot_id(snapshot)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(error_code(&e)) => {}
                Err(e) => {
                    return Err(classify(
                        &format!("DeleteSnapshot {snapshot}"),
                        Effect::Write,
                        &e,
                    ))
                }
            }
        }
        Ok(())
    }
}

fn is_not_found(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" | "InvalidSnapshot.NotFound")
    )
}

fn to_image(i: &aws_sdk_ec2::types::Image) -> Image {
    let state = match i.state() {
        Some(Ec2ImageState::Pending) => ImageState::Pending,
        Some(Ec2ImageState::Available) => ImageState::Available,
        Some(s @ (Ec2ImageState::Failed | Ec2ImageState::Invalid | Ec2ImageState::Error)) => {
            ImageState::Failed(s.as_str().to_owned())
        }
        Some(other) => ImageState::Other(other.as_str().to_owned()),
        None => ImageState::Other("unknown".into()),
    };
    Image {
        id: i.image_id().unwrap_or_default().to_owned(),
        name: i.name().unwrap_or_default().to_owned(),
        state,
        tags: i
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect(),
        snapshot_ids: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
            .collect(),
        creation_date: i.creation_date().map(str::to_owned),
        state_reason: i
            .state_reason()
            .and_then(|r| r.message())
            .map(str::to_owned),
    }
}
