<resource schema="epnml_crossings" resdir="crossings">
	<meta name="title">epnml crossings: MESSENGER bow shock and magnetopause crossings at Mercury found by machine learning</meta>
	<meta name="description">
		Bow shock and magnetopause crossings of MESSENGER at Mercury (inbound and
		outbound, outer and inner edges, after the boundary numbering of Philpott
		et al. 2020) found by a sequence model classifying magnetometer data into
		plasma regions, after the Europlanet Mercury boundaries science case
		(Julka et al. 2022).  One row per boundary edge with its time, MSO
		position (cartesian, km), local time, radial distance, orbit number,
		model score and the model version that wrote it; a quicklook of the
		orbit's magnetic field with the crossings marked.  Rows derived from
		simulated magnetometer data say "SIMULATED" in processing_level_desc.
	</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">planetary-magnetospheres</meta>
	<meta name="subject">mercury-planet</meta>
	<meta name="creator">epnml team</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="source">10.1029/2019JA027544</meta>
	<meta name="referenceURL">https://doi.org/10.1029/2019JA027544</meta>
	<meta name="instrument">MESSENGER MAG</meta>
	<meta name="facility">MESSENGER</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<meta name="description">
			Boundary crossings, one boundary edge per row (EPN-TAP 2.0, dataproduct_type ci).
			The table is a view over the current rows of the store.
		</meta>
		<mixin spatial_frame_type="cartesian"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition feature_name spatial_coordinate_description spatial_origin local_time_min local_time_max radial_distance_min radial_distance_max datalink_url"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="crossing_direction" type="text" ucd="meta.code"
			description="inbound or outbound"/>
		<column name="crossing_edge" type="text" ucd="meta.code"
			description="outer or inner edge"/>
		<column name="orbit_number" type="integer" ucd="meta.id;obs.sequence"
			description="Spacecraft orbit number">
			<values nullLiteral="-1"/>
		</column>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.crossings WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<regSuite title="epnml crossings regression">
		<regTest title="epn_core serves a current row">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_class FROM epnml_crossings.epn_core"
				>/tap/sync</url>
			<code>
				# a row, not the table name: the name is also in the query echoed back
				row = self.getUnique(self.getVOTableRows())
				self.assertEqual(row["service_title"], "epnml_crossings")
				self.assertEqual(row["target_class"], "planet")
			</code>
		</regTest>
		<regTest title="bow shock crossings by local time">
			<url parSet="TAP" QUERY="SELECT TOP 5 feature_name, local_time_min FROM epnml_crossings.epn_core WHERE feature_name = 'bow shock' AND local_time_min BETWEEN 0 AND 24"
				>/tap/sync</url>
			<code>
				# rows, not the column name: it is also in the header of an empty answer
				rows = self.getVOTableRows()
				self.assertTrue(rows, "no bow shock crossing served")
				for row in rows:
					self.assertEqual(row["feature_name"], "bow shock")
					self.assertTrue(0 &lt;= row["local_time_min"] &lt;= 24)
			</code>
		</regTest>
	</regSuite>
</resource>
