"""Evaluation: feature networks (Inception, digits classifier), IS / FID / KID, reference statistics."""
