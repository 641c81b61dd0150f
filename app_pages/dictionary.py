"""Dictionary: every column of every dataset, with its kind, unit, description and meaning."""

import streamlit as st

from nano_export.datasets import DATASETS
from nano_export.ui import session

session.require_user()

st.title("Data dictionary")
st.caption(
    "What each exported column holds. Times are in UTC; costs in US dollars. The same text is in "
    "the column pickers, the table headers, `nano-export export --help` and the API description."
)
for ds in DATASETS.values():
    st.subheader(ds.name)
    st.caption(ds.description)
    st.dataframe(
        [
            {
                "column": c.name,
                "kind": c.kind,
                "unit": c.unit,
                "description": c.description,
                "values": c.meaning,
            }
            for c in ds.columns
        ],
        hide_index=True,
        width="stretch",
        row_height=32,
        height=40 + 32 * len(ds.columns),  # every column in view, no inner scrolling
        column_config={
            "column": st.column_config.TextColumn(width="medium"),
            "unit": st.column_config.TextColumn(width="medium"),
            "description": st.column_config.TextColumn(width="large"),
            "values": st.column_config.TextColumn(width="large"),
        },
    )
