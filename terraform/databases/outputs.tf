output "neo4j_security_group_id" {
  value = aws_security_group.neo4j.id
}

output "instance_profile" {
  value = aws_iam_instance_profile.neo4j.name
}

output "backup_bucket" {
  value = aws_s3_bucket.backups.bucket
}

output "secret_arn" {
  value = aws_secretsmanager_secret.app.arn
}

output "instance_id_parameters" {
  value = { for k, p in aws_ssm_parameter.instance_id : k => p.name }
}

output "image_id_parameters" {
  value = { for k, p in aws_ssm_parameter.image_id : k => p.name }
}
