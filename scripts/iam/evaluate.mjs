// Answers IAM authorization questions for the local run, one JSON object a line on stdin:
//   {"id": 1, "principal": ARN, "action": "sqs:SendMessage", "resource": ARN, "account": "123456789012",
//    "identityPolicies": [{"name": ..., "policy": {...}}], "resourcePolicy": {...}?, "context": {...}?}
// and writes {"id": 1, "decision": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied", "errors": ...}.
// The evaluation is @cloud-copilot/iam-simulate's (AWS's policy evaluation logic, conditions included).
import { createInterface } from 'node:readline';
import { runSimulation } from '@cloud-copilot/iam-simulate';

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const ask = JSON.parse(line);
  let answer;
  try {
    const result = await runSimulation(
      {
        request: {
          principal: ask.principal,
          action: ask.action,
          resource: { resource: ask.resource, accountId: ask.account },
          contextVariables: ask.context ?? {},
        },
        identityPolicies: ask.identityPolicies ?? [],
        resourcePolicy: ask.resourcePolicy,
        serviceControlPolicies: [],
        resourceControlPolicies: [],
      },
      {},
    );
    answer = result.resultType === 'error'
      ? { id: ask.id, decision: 'Error', errors: result.errors }
      : { id: ask.id, decision: result.overallResult };
  } catch (error) {
    answer = { id: ask.id, decision: 'Error', errors: { message: String(error) } };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
