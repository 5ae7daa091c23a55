"""IAM by execution: the roles as ``sam deploy`` creates them, and the evaluation of every AWS
request the emulated runtime makes against its function's role."""
