"""Analyst reports over brand mentions: filters, the mention stream, the four reports, CSV and charts."""
