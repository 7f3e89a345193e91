variable "environment" {
  type = string
}

variable "region" {
  type    = string
  default = "af-south-1"
}

variable "vpc_id" {
  description = "connectors' vpc_id output"
  type        = string
}

variable "app_security_group_id" {
  description = "connectors' app_security_group_id output: the tasks that speak Bolt"
  type        = string
}

variable "secret_name" {
  description = "the JSON secret the app reads (neo4j_stage_secrets, neo4j_prod_secrets)"
  type        = string
}

variable "databases" {
  description = "the databases cutover manages, e.g. [\"ledger\", \"search\"]"
  type        = list(string)
  default     = ["ledger", "search"]
}

variable "backup_retention_days" {
  type    = number
  default = 35
}
