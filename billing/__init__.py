"""The rules of SPEC.md as plain functions over the models: no web, queue, Slack or SMTP here.

Every function that needs the time takes it as `now` (an aware UTC datetime) from its caller.
"""
