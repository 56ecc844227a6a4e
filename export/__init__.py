"""ecgae.export"""
