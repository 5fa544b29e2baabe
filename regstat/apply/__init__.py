"""apply-gc: carry out a plan against the live registry, each action re-verified first
(docs/apply.md). target: what a source must do; targets: which one a snapshot's source opens;
storage_tree: the storage-tree target; plan_check: the refusals; live: fresh crawls and the
SQL that re-verifies; runner: phases and batches; journal: the journal and its lock;
summary: the outcome in numbers; history: explain --journal."""
