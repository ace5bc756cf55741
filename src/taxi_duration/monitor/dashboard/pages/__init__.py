"""The dashboard's pages, one Streamlit script each (`app.py` lists them)."""
