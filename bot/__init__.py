"""Hamroh: a helpline chatbot in Tajik and Russian."""
