"""`ironserve monitoring`: the monitoring role's files, rendered without a deploy."""
