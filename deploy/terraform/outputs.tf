# Outputs of the coordinator EC2 module. Every output is described in README.md.

output "alb_dns_name" {
  description = "DNS name of the ALB; point a CNAME/alias at it. Clients call https://<name>/v1/chat/completions (or http:// without a certificate)."
  value       = aws_lb.coordinator.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted-zone id of the ALB, for an alias record."
  value       = aws_lb.coordinator.zone_id
}

output "alb_arn" {
  description = "ARN of the ALB."
  value       = aws_lb.coordinator.arn
}

output "endpoint" {
  description = "Base URL of the OpenAI-compatible API through the ALB."
  value       = "${var.certificate_arn == null ? "http" : "https"}://${aws_lb.coordinator.dns_name}/v1"
}

output "target_group_arn" {
  description = "ARN of the target group (port 2048, health check /ready)."
  value       = aws_lb_target_group.coordinator.arn
}

output "alb_security_group_id" {
  description = "Security group of the ALB (ingress 80/443 from alb_ingress_cidrs)."
  value       = aws_security_group.alb.id
}

output "instance_security_group_id" {
  description = "Security group of the instances (ingress 2048 from the ALB only)."
  value       = aws_security_group.instance.id
}

output "instance_role_name" {
  description = "Name of the instance role (read access to the profile prefix), for attaching more policies."
  value       = aws_iam_role.instance.name
}

output "instance_role_arn" {
  description = "ARN of the instance role; grant it kms:Decrypt in the key policy if that policy does not delegate to IAM."
  value       = aws_iam_role.instance.arn
}

output "autoscaling_group_names" {
  description = "One Auto Scaling group per shard, in shard order (index 0 runs --shard 1/N)."
  value       = aws_autoscaling_group.coordinator[*].name
}

output "log_group_name" {
  description = "CloudWatch log group that receives the container output (image mode), one stream per instance id."
  value       = aws_cloudwatch_log_group.coordinator.name
}
