"""What the Lambda code, the stacks and the operator CLI must agree on (see constants.py)."""
