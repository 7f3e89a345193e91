# credex-core on ECS Fargate. The container's environment is built from maps keyed by
# name, so a setting is replaced, never appended twice (the duplicate-entries hazard of
# the old deploy job). A new image registers a new task definition revision; the service
# waits until it is stable, and ECS's deployment circuit breaker rolls back to the
# previous revision when the new tasks do not become healthy.
locals {
  component = "app"
  name      = "credex-core-${var.environment}"
  # The six Bolt settings the app reads once at start-up, from the JSON secret.
  bolt_secrets = {
    NEO_4J_LEDGER_SPACE_BOLT_URL = "ledgerspacebolturl"
    NEO_4J_LEDGER_SPACE_USER     = "ledgerspaceuser"
    NEO_4J_LEDGER_SPACE_PASS     = "ledgerspacepass"
    NEO_4J_SEARCH_SPACE_BOLT_URL = "searchspacebolturl"
    NEO_4J_SEARCH_SPACE_USER     = "searchspaceuser"
    NEO_4J_SEARCH_SPACE_PASS     = "searchspacepass"
  }
  environment = merge({ NODE_ENV = "production", DEPLOYMENT_ENV = var.environment }, var.settings)
}

resource "aws_ecs_cluster" "main" {
  name = "credex-cluster-${var.environment}"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/ecs/${local.name}"
  retention_in_days = 365
  kms_key_id        = var.kms_key_arn
}

resource "aws_iam_role_policy" "read_secret" {
  name = "${local.name}-read-bolt-secret"
  role = element(split("/", var.task_execution_role_arn), length(split("/", var.task_execution_role_arn)) - 1)
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["secretsmanager:GetSecretValue"], Resource = [var.secret_arn] }]
  })
}

resource "aws_ecs_task_definition" "app" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.task_execution_role_arn
  task_role_arn            = var.task_role_arn
  container_definitions = jsonencode([{
    name                   = "credex-core"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = 5000, protocol = "tcp" }]
    environment            = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    secrets                = [for k in sort(keys(local.bolt_secrets)) : { name = k, valueFrom = "${var.secret_arn}:${local.bolt_secrets[k]}::" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "app"
      }
    }
  }])
}

resource "aws_lb_target_group" "app" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; tasks listen in private subnets that only the ALB's group reaches
  name        = local.name
  port        = 5000
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  health_check {
    path    = "/health"
    matcher = "200"
  }
}

resource "aws_lb_listener_rule" "app" {
  listener_arn = var.https_listener_arn
  priority     = 100
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.app.arn
  }
  condition {
    path_pattern {
      values = ["/*"]
    }
  }
}

resource "aws_ecs_service" "app" {
  name            = "credex-core-service-${var.environment}"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.app.arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"
  # Old tasks stop before new ones start: the DCO/MTQ jobs inside each task must never
  # run twice against two databases.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  wait_for_steady_state              = true
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.app_security_group_id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.app.arn
    container_name   = "credex-core"
    container_port   = 5000
  }
  depends_on = [aws_lb_listener_rule.app]
}
