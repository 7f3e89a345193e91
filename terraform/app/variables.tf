variable "environment" {
  type = string
}

variable "region" {
  type    = string
  default = "af-south-1"
}

variable "image" {
  description = "the credex-core image to run: <ecr_repository_url>:<tag>"
  type        = string
  validation {
    condition     = length(var.image) > 0
    error_message = "Set the image to deploy (cutover: --set app_image=<ecr url>:<tag>)."
  }
}

variable "vpc_id" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "app_security_group_id" {
  type = string
}

variable "https_listener_arn" {
  type = string
}

variable "task_execution_role_arn" {
  type = string
}

variable "task_role_arn" {
  type = string
}

variable "kms_key_arn" {
  description = "connectors' key, for the log group"
  type        = string
}

variable "secret_arn" {
  description = "databases' secret_arn: the JSON secret with the Bolt settings"
  type        = string
}

variable "desired_count" {
  type    = number
  default = 2
}

variable "cpu" {
  type    = number
  default = 512
}

variable "memory" {
  type    = number
  default = 1024
}

variable "settings" {
  description = "plain environment settings of the task (never secrets), by name"
  type        = map(string)
  default     = {}
}
