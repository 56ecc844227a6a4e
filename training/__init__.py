"""ecgae.training"""
