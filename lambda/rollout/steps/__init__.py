"""The rollout's steps, a module per phase; rollout.handler maps each state-machine action to one."""
