//! The `aws` provider: EC2, SSM Run Command, S3, Secrets Manager.
