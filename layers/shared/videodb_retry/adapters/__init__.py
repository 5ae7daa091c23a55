"""The adapters: AWS (SQS, EventBridge, Step Functions, DynamoDB, Secrets Manager) and the
VideoDB HTTP API behind the ports the steps are typed against. They never import a step."""
