"""apply-gc: carry out a plan against the live registry, each action re-verified first
(docs/apply.md). target: what a source must do; targets: which one a snapshot's source opens."""
