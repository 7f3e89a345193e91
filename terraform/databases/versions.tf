terraform {
  required_version = ">= 1.11.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
  # Settings come from cutover at init (-backend-config): the environment's [terraform]
  # bucket and key_prefix, workspace <component>_<env>, S3-native lock file.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "cutover:env"       = var.environment
      "cutover:component" = local.component
      "managed-by"        = "terraform"
    }
  }
}
