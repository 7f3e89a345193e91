variable "environment" {
  description = "development, staging or production"
  type        = string
}

variable "region" {
  type    = string
  default = "af-south-1"
}

variable "vpc_cidr" {
  type    = string
  default = "10.40.0.0/16"
}

variable "certificate_arn" {
  description = "ACM certificate of the API's host name, for the HTTPS listener"
  type        = string
  validation {
    condition     = startswith(var.certificate_arn, "arn:aws:acm:")
    error_message = "Set the ACM certificate ARN (cutover: --set certificate_arn=arn:aws:acm:...)."
  }
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows may assume the deploy role"
  type        = string
}
