output "cluster" {
  value = aws_ecs_cluster.main.name
}

output "service" {
  value = aws_ecs_service.app.name
}

output "task_definition" {
  description = "family:revision now running"
  value       = "${aws_ecs_task_definition.app.family}:${aws_ecs_task_definition.app.revision}"
}
