"""The customer's pages (plan-change confirmation, card update) and the signed links that open them."""
