"""pettingzoo"""
