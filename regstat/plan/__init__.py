"""`regstat plan-gc` and `regstat explain`: retention policies (policy.py, policy_file.py), the
planner's decisions (planner.py), the Plan they make (plan.py) and its rendering (render.py),
and why one tag or manifest is kept or deleted (explain.py, explain_target.py)."""
