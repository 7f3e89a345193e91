# What outlives the Neo4j instances. cutover owns the instances themselves (it creates
# green and retires blue) and publishes their ids in the SSM parameters below; Terraform
# creates those parameters once and never changes their values (ignore_changes), so a
# blue-green never fights Terraform's state.
locals {
  component = "databases"
  name      = "credex-${var.environment}"
}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "data" {
  description         = "${local.name}: database backups and secrets"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "account"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

# --- security group: Bolt from the app only ------------------------------------------

resource "aws_security_group" "neo4j" {
  #checkov:skip=CKV2_AWS_5:attached by cutover to the Neo4j instances it launches ([aws] security_group_ids)
  name        = "${local.name}-neo4j"
  description = "Neo4j servers: Bolt from the app tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "bolt_from_app" {
  security_group_id            = aws_security_group.neo4j.id
  description                  = "Bolt from credex-core"
  referenced_security_group_id = var.app_security_group_id
  from_port                    = 7687
  to_port                      = 7687
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "neo4j_https" {
  security_group_id = aws_security_group.neo4j.id
  description       = "HTTPS out: SSM, S3 and Secrets Manager endpoints"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
}

# --- backups ---------------------------------------------------------------------------

resource "aws_s3_bucket" "backups" {
  #checkov:skip=CKV_AWS_144:backups are copied to the DR region by the organisation's backup plan, not by replication here
  #checkov:skip=CKV_AWS_18:access is logged by the account's CloudTrail data events
  #checkov:skip=CKV2_AWS_62:no consumer of bucket events; cutover verifies every artifact's SHA-256 itself
  bucket = "${local.name}-neo4j-backups"
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "backups" {
  bucket = aws_s3_bucket.backups.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "backups" {
  bucket                  = aws_s3_bucket.backups.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    id     = "expire-old-backups"
    status = "Enabled"
    filter {
      prefix = "backups/"
    }
    expiration {
      days = var.backup_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

# --- instance profile: what an instance cutover launches may do ------------------------

resource "aws_iam_role" "neo4j" {
  name = "${local.name}-neo4j"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.neo4j.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "neo4j" {
  role = aws_iam_role.neo4j.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "backups"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:AbortMultipartUpload"]
        Resource = [aws_s3_bucket.backups.arn, "${aws_s3_bucket.backups.arn}/*"]
      },
      {
        Sid      = "secrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [aws_secretsmanager_secret.app.arn]
      },
      {
        Sid      = "kms"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [aws_kms_key.data.arn]
      },
    ]
  })
}

resource "aws_iam_instance_profile" "neo4j" {
  name = "${local.name}-neo4j"
  role = aws_iam_role.neo4j.name
}

# --- secrets: the containers; cutover writes and rotates the values --------------------

resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:cutover rotates this secret during every blue-green (secret.rotate), not a Lambda schedule
  name       = var.secret_name
  kms_key_id = aws_kms_key.data.arn
}

# --- parameters cutover maintains: current instance and image per database -------------

resource "aws_ssm_parameter" "instance_id" {
  #checkov:skip=CKV2_AWS_34:an EC2 id is not a secret; plain String keeps every reader free of KMS grants
  for_each = toset(var.databases)
  name     = "/cutover/${var.environment}/${each.key}/instance-id"
  type     = "String"
  value    = "none"
  lifecycle {
    ignore_changes = [value] # cutover publishes the value after each switch
  }
}

resource "aws_ssm_parameter" "image_id" {
  #checkov:skip=CKV2_AWS_34:an EC2 id is not a secret; plain String keeps every reader free of KMS grants
  for_each = toset(var.databases)
  name     = "/cutover/${var.environment}/${each.key}/image-id"
  type     = "String"
  value    = "none"
  lifecycle {
    ignore_changes = [value] # the AMI build publishes the value
  }
}
