"""The Slack bot for sellers (slack-bolt), mounted at POST /slack/events: commands, buttons, the plan form,
workspace linking, and the delivery of notifications to the seller's channel."""
