"""The rollout engine's Kubernetes access: the EKS bearer token (token), a small HTTP client for the objects it
reads and writes (client), and the edits of a Deployment's spec that both the steps and the track owner make
(deployments). urllib rather than the Kubernetes Python client: the Lambda runtime has only the standard library
and boto3, and the engine needs a few endpoints, not a generated client for all of them."""
