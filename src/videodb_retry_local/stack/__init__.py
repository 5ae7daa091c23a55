"""The emulated stack: template.yaml read and provisioned in moto, the Lambda runtime running
the real handlers, the SQS event source, strict AWS limits and the network guard."""
