"""The teacher: a Gemini client with the contract of DESIGN.md, alignment, rate limiting and a fake endpoint."""
