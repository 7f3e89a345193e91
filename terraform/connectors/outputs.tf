output "vpc_id" {
  value = aws_vpc.main.id
}

output "private_subnet_ids" {
  value = aws_subnet.private[*].id
}

output "app_security_group_id" {
  value = aws_security_group.app.id
}

output "https_listener_arn" {
  value = aws_lb_listener.https.arn
}

output "ecr_repository_url" {
  value = aws_ecr_repository.app.repository_url
}

output "task_execution_role_arn" {
  value = aws_iam_role.task_execution.arn
}

output "task_role_arn" {
  value = aws_iam_role.task.arn
}

output "deploy_role_arn" {
  value = aws_iam_role.deploy.arn
}

output "kms_key_arn" {
  value = aws_kms_key.shared.arn
}
