"""What a study found, with evidence a practitioner can trust: paired comparisons on seeds, the confirmed
winner, the report."""
