"""What is published, what is released, what was mailed: the decisions behind ``digest run``.

Takes the parsed issues, the state and the ledgers; hands on one status per
issue (send it, wait, or why not) and the snapshot that keeps idle cron ticks cheap.
"""
