"""ecgae.runtime"""
